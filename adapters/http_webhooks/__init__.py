from adapters.http_webhooks.sender import HttpWebhookSender

__all__ = ["HttpWebhookSender"]
