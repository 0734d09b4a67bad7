import pytest

from domain.errors import InvalidRequest
from domain.model import MAX_PROMPT_BYTES, AgentRequest


@pytest.mark.parametrize("project", ["a", "demo", "a-b-1", "0" * 63])
def test_valid_project_ids(project):
    assert AgentRequest.create(project, "hi").project_id == project


@pytest.mark.parametrize("project", ["", "-a", "a-", "A", "a_b", "a" * 64, "ä", "a b"])
def test_invalid_project_ids(project):
    with pytest.raises(InvalidRequest) as error:
        AgentRequest.create(project, "hi")
    assert error.value.field == "project_id"


def test_prompt_limit_counts_utf8_bytes():
    AgentRequest.create("p", "x" * MAX_PROMPT_BYTES)
    with pytest.raises(InvalidRequest, match="prompt"):
        AgentRequest.create("p", "é" * (MAX_PROMPT_BYTES // 2 + 1))
    with pytest.raises(InvalidRequest, match="prompt"):
        AgentRequest.create("p", "")


@pytest.mark.parametrize("timeout", [0, -1, 86_401])
def test_timeout_bounds(timeout):
    with pytest.raises(InvalidRequest, match="timeout_s"):
        AgentRequest.create("p", "hi", timeout_s=timeout)


def test_a_single_provider_becomes_a_chain_of_one():
    assert AgentRequest.create("p", "hi", providers="x").providers == ("x",)
    assert AgentRequest.create("p", "hi", providers=["x", "y"]).providers == ("x", "y")
