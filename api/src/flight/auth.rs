//! Who is calling: the workspace API key from the `authorization` header, given as a bearer
//! token or as the password of basic auth (any user name).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use tonic::metadata::MetadataMap;

/// Standard base64, padded or not: Go's Flight client (under ADBC) sends it unpadded.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The API key a call carries.
pub(super) fn api_key(metadata: &MetadataMap) -> Result<String, tonic::Status> {
    let header = metadata
        .get("authorization")
        .ok_or_else(|| {
            tonic::Status::unauthenticated(
                "send the workspace API key: basic auth with the key as password, or `authorization: Bearer <key>`",
            )
        })?
        .to_str()
        .map_err(|_| tonic::Status::unauthenticated("the authorization header is not text"))?;
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    let key = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => value.to_string(),
        "basic" => {
            let decoded = BASIC
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    tonic::Status::unauthenticated("basic auth must be base64 of `user:key`")
                })?;
            let (_user, key) = decoded.split_once(':').ok_or_else(|| {
                tonic::Status::unauthenticated("basic auth must be base64 of `user:key`")
            })?;
            key.to_string()
        }
        _ => {
            return Err(tonic::Status::unauthenticated(
                "the authorization header must be `Basic <user:key>` or `Bearer <key>`",
            ));
        }
    };
    if key.is_empty() {
        return Err(tonic::Status::unauthenticated("the API key is empty"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(header: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", header.parse().expect("ascii"));
        m
    }

    #[test]
    fn reads_the_key_from_bearer_and_basic() {
        assert_eq!(
            api_key(&with("Bearer oneo_abc")).ok().as_deref(),
            Some("oneo_abc")
        );
        for basic in [
            base64::engine::general_purpose::STANDARD.encode("anyone:oneo_abcd"),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("anyone:oneo_abcd"),
        ] {
            assert_eq!(
                api_key(&with(&format!("Basic {basic}"))).ok().as_deref(),
                Some("oneo_abcd"),
                "{basic}"
            );
        }
    }

    #[test]
    fn refuses_what_carries_no_key() {
        for bad in ["Bearer ", "Basic !!!", "Token oneo_abc", "Basic dXNlcg=="] {
            let e = api_key(&with(bad)).expect_err(bad);
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let e = api_key(&MetadataMap::new()).expect_err("no header");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
}
