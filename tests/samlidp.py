"""A real SAML 2.0 identity provider for the tests: pysaml2's IdP (``saml2.server.Server``) with a
key pair and certificate made at test time by ``cryptography``.

It publishes its metadata (the hub's ``idp_metadata``) and issues signed assertions the way it
does for any service provider (``Server.setup_assertion``, then signed by its security context
with xmlsec1). A test may change the assertion before it is signed (times, audience, recipient),
which is what an IdP with a wrong clock or a wrong configuration sends.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name, saml, samlp
    from saml2.config import IdPConfig
    from saml2.metadata import entity_descriptor
    from saml2.s_utils import sid
    from saml2.server import Server
    from saml2.sigver import pre_signature_part, signed_instance_factory
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

__all__ = ["IDP_ENTITY_ID", "IdentityProvider", "encode", "stamp"]

IDP_ENTITY_ID = "https://idp.example.test/saml2"


def stamp(at: datetime) -> str:
    """An xs:dateTime as SAML writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(document: bytes) -> str:
    """The ``assertion`` form value of RFC 7522: base64url without padding."""
    return base64.urlsafe_b64encode(document).rstrip(b"=").decode()


class IdentityProvider:
    """pysaml2's IdP, with its own key and certificate in ``folder``."""

    def __init__(
        self,
        folder: Path,
        entity_id: str = IDP_ENTITY_ID,
        sso_url: str = "https://idp.example.test/sso",
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.entity_id = entity_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "erpbridge test IdP")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .sign(key, hashes.SHA256())
        )
        (folder / "idp.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (folder / "idp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        config = IdPConfig()
        config.load(
            {
                "entityid": entity_id,
                "key_file": str(folder / "idp.key"),
                "cert_file": str(folder / "idp.crt"),
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (sso_url, BINDING_HTTP_REDIRECT),
                                (sso_url, BINDING_HTTP_POST),
                            ]
                        },
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
                            }
                        },
                    }
                },
            }
        )
        self.config = config
        self.server = Server(config=config)

    def metadata(self) -> str:
        """The IdP's SAML metadata (its entity ID, SSO endpoint and signing certificate)."""
        return str(entity_descriptor(self.config))

    def assertion(
        self,
        name_id: str,
        attributes: Mapping[str, Sequence[str]],
        *,
        audience: str,
        recipient: str,
        sign: bool = True,
        change: Callable[[Any], None] | None = None,
    ) -> bytes:
        """A signed ``<saml:Assertion>`` for ``audience``, its bearer confirmation for
        ``recipient``, valid five minutes from now; ``change`` edits it before it is signed."""
        assertion = self._assertion(name_id, attributes, audience, recipient, None)
        if change is not None:
            change(assertion)
        if not sign:
            return str(assertion).encode()
        return str(self._signed(assertion, [assertion])).encode()

    def response(
        self,
        name_id: str,
        attributes: Mapping[str, Sequence[str]],
        *,
        audience: str,
        acs_url: str,
        in_response_to: str | None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        change: Callable[[Any], None] | None = None,
    ) -> str:
        """A ``<samlp:Response>`` to the request ``in_response_to`` as the IdP posts it to
        ``acs_url`` (the ``SAMLResponse`` form value, base64), its assertion for ``audience``
        signed; ``change`` edits the response before it is signed."""
        assertion = self._assertion(name_id, attributes, audience, acs_url, in_response_to)
        response = samlp.Response(
            id=sid(),
            in_response_to=in_response_to,
            destination=acs_url,
            version="2.0",
            issue_instant=stamp(datetime.now(UTC)),
            issuer=self.server._issuer(),
            status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
            assertion=assertion,
        )
        if change is not None:
            change(response)
        signed: list[Any] = ([assertion] if sign_assertion else []) + (
            [response] if sign_response else []
        )
        document = str(self._signed(response, signed)) if signed else str(response)
        return base64.b64encode(document.encode()).decode()

    def _signed(self, root: Any, parts: Sequence[Any]) -> Any:
        for number, part in enumerate(parts, 1):
            part.signature = pre_signature_part(
                part.id,
                self.server.sec.my_cert,
                number,
                digest_alg=DIGEST_SHA256,
                sign_alg=SIG_RSA_SHA256,
            )
        return signed_instance_factory(
            root, self.server.sec, [(class_name(part), part.id) for part in parts]
        )

    def _assertion(
        self,
        name_id: str,
        attributes: Mapping[str, Sequence[str]],
        audience: str,
        recipient: str,
        in_response_to: str | None,
    ) -> Any:
        return self.server.setup_assertion(
            {"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            audience,
            in_response_to,
            recipient,
            saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, text=name_id),
            self.config.getattr("policy", "idp"),
            self.server._issuer(),
            None,
            {key: list(values) for key, values in attributes.items()},
            True,
            False,
        )


def new_id() -> str:
    """A fresh assertion ID, as an IdP makes them."""
    return str(sid())
