//! Standard Webhooks signatures over `"{id}.{timestamp}.{body}"`, one per active secret,
//! space-separated, so consumers keep verifying while a rotated secret overlaps with the new one:
//! `v1,<base64 HMAC-SHA256>` for `whsec_` secrets and `v1a,<base64 Ed25519>` for `whsk_` ones.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use hookline_core::domain::SigningSecret;
use sha2::Sha256;

pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    match secret {
        SigningSecret::Hmac(key) => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        }
        SigningSecret::Ed25519(key) => {
            let mut signed = Vec::with_capacity(msg_id.len() + body.len() + 24);
            signed.extend_from_slice(msg_id.as_bytes());
            signed.push(b'.');
            signed.extend_from_slice(timestamp.to_string().as_bytes());
            signed.push(b'.');
            signed.extend_from_slice(body);
            format!("v1a,{}", STANDARD.encode(key.sign(&signed).to_bytes()))
        }
    }
}

/// The `webhook-signature` header over a body read chunk by chunk (one pass, every secret at
/// once), or `None` when a secret cannot sign a stream: Ed25519 signs the whole message at once.
pub async fn signature_header_streamed<S>(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: i64,
    mut chunks: S,
) -> std::io::Result<Option<String>>
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt;
    let mut macs = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let SigningSecret::Hmac(key) = secret else { return Ok(None) };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        macs.push(mac);
    }
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        for mac in &mut macs {
            mac.update(&chunk);
        }
    }
    let signatures: Vec<String> =
        macs.into_iter().map(|mac| format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))).collect();
    Ok(Some(signatures.join(" ")))
}

/// The `webhook-signature` header value for every secret.
pub fn signature_header(secrets: &[SigningSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|secret| sign(secret, msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_streamed_signature_equals_the_whole_body_one_for_every_hmac_secret() {
        let secrets = [SigningSecret::generate(), SigningSecret::generate()];
        let body = b"{\"a\": \"split across chunks\"}".to_vec();
        let chunks = futures_util::stream::iter(
            body.chunks(5).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect::<Vec<_>>(),
        );
        let streamed = signature_header_streamed(&secrets, "msg_1", 1614265330, chunks).await.unwrap();
        assert_eq!(streamed, Some(signature_header(&secrets, "msg_1", 1614265330, &body)));
        let with_ed25519 = [SigningSecret::generate_for(hookline_core::domain::SignatureScheme::V1a)];
        let none = futures_util::stream::iter(Vec::<std::io::Result<bytes::Bytes>>::new());
        assert_eq!(signature_header_streamed(&with_ed25519, "msg_1", 1, none).await.unwrap(), None);
    }

    /// The test vector of the Standard Webhooks specification (and its reference libraries).
    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn ed25519_signatures_verify_with_the_public_key() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let secret = SigningSecret::generate_for(hookline_core::domain::SignatureScheme::V1a);
        let header = sign(&secret, "msg_x", 1614265330, b"{}");
        let encoded = header.strip_prefix("v1a,").expect("a v1a signature");
        let signature = Signature::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap();
        let public = secret.public_key().unwrap();
        let public: [u8; 32] =
            STANDARD.decode(public.strip_prefix("whpk_").unwrap()).unwrap().try_into().unwrap();
        let key = VerifyingKey::from_bytes(&public).unwrap();
        key.verify(b"msg_x.1614265330.{}", &signature).unwrap();
        assert!(key.verify(b"msg_x.1614265331.{}", &signature).is_err());
        // The stored form parses back to the same key.
        assert_eq!(SigningSecret::parse(&secret.expose()).unwrap(), secret);
    }

    #[test]
    fn every_active_secret_signs() {
        let one = SigningSecret::generate();
        let two = SigningSecret::generate();
        let header = signature_header(&[one.clone(), two], "msg_x", 1, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&one, "msg_x", 1, b"{}"));
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
