from adapters.aes_gcm.cipher import AesGcmKeyRing

__all__ = ["AesGcmKeyRing"]
