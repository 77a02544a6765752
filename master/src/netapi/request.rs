//! Request bodies (salt-api's `hypermedia_in`) and where the session id
//! comes from.
//!
//! Bodies: `application/json`, `application/x-www-form-urlencoded` (the
//! default when no `Content-Type` is sent; repeated keys become lists,
//! `arg` is always a list, `arg` and `kwarg` values are typed with YAML as
//! on the command line), `application/x-yaml` / `text/yaml`, and
//! `text/plain` (JSON if it parses, else the text). Anything else is 406;
//! a body over `max_request_body_size` is 413, checked against
//! `Content-Length` before reading and while reading.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use brine_protocol::Value;
use brine_protocol::args::yamlify_arg;

use super::json;
use super::respond::ApiError;

/// A read body: its text and what it parsed to (`None` when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) raw: String,
    pub(crate) data: Option<Value>,
}

/// Reads and parses a request body.
///
/// # Errors
/// [`ApiError::TooLarge`], [`ApiError::NotAcceptable`] for an unsupported
/// `Content-Type`, [`ApiError::BadRequest`] for text that does not parse.
pub(crate) async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Parsed, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        // the only error besides the limit is a broken connection
        if std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("length limit"))
            || err.to_string().contains("length limit")
        {
            ApiError::TooLarge(limit)
        } else {
            ApiError::BadRequest(format!("Could not read the request body: {err}"))
        }
    })?;
    if bytes.is_empty() {
        return Ok(Parsed::default());
    }
    let raw = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("The request body is not UTF-8".to_owned()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/x-www-form-urlencoded".to_owned());
    let data = match content_type.as_str() {
        "application/json" => json::parse(&raw)
            .map_err(|e| ApiError::BadRequest(format!("Invalid JSON document: {e}")))?,
        "application/x-www-form-urlencoded" => form(&raw),
        "application/x-yaml" | "text/yaml" => brine_protocol::load_yaml(&raw)
            .map_err(|e| ApiError::BadRequest(format!("Invalid YAML document: {e}")))?,
        "text/plain" => json::parse(&raw).unwrap_or_else(|_| Value::from(raw.as_str())),
        _ => {
            return Err(ApiError::NotAcceptable(
                "Content type not supported".to_owned(),
            ));
        }
    };
    Ok(Parsed {
        raw,
        data: Some(data),
    })
}

/// salt-api's `urlencoded_processor`.
fn form(raw: &str) -> Value {
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.into_owned()),
            None => fields.push((key.into_owned(), vec![value.into_owned()])),
        }
    }
    let mut out = Value::map();
    for (key, mut values) in fields {
        let value = match key.as_str() {
            "arg" => Value::Array(values.iter().map(|v| yamlify_arg(v)).collect()),
            "kwarg" if values.len() == 1 => yamlify_arg(&values.remove(0)),
            _ if values.len() == 1 => Value::from(values.remove(0)),
            _ => Value::Array(values.into_iter().map(Value::from).collect()),
        };
        out.insert(&key, value);
    }
    out
}

/// salt-api's `lowdata_fmt`: an object becomes a list of one.
pub(crate) fn lowstates(data: Option<Value>) -> Result<Vec<Value>, ApiError> {
    match data {
        Some(Value::Array(items)) => Ok(items),
        Some(map @ Value::Map(_)) => Ok(vec![map]),
        _ => Err(ApiError::BadRequest("Lowstates must be a list".to_owned())),
    }
}

/// The session id a request carries: `X-Auth-Token`, else the
/// `session_id` cookie.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "session_id")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// One query parameter's value.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn bodies_by_content_type() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        let parsed = read(&json, Body::from(r#"{"client": "local"}"#), 100)
            .await
            .unwrap();
        assert_eq!(
            parsed.data.unwrap().get("client").unwrap(),
            &Value::from("local")
        );
        let bad = read(&json, Body::from("{nope"), 100).await.unwrap_err();
        assert!(matches!(bad, ApiError::BadRequest(_)));
        let big = read(&json, Body::from(vec![b' '; 101]), 100)
            .await
            .unwrap_err();
        assert_eq!(big, ApiError::TooLarge(100));
        let xml = headers(&[("content-type", "application/xml")]);
        let err = read(&xml, Body::from("<a/>"), 100).await.unwrap_err();
        assert!(matches!(err, ApiError::NotAcceptable(_)));
        let empty = read(&json, Body::empty(), 100).await.unwrap();
        assert!(empty.data.is_none());
        let yaml = headers(&[("content-type", "application/x-yaml")]);
        let parsed = read(
            &yaml,
            Body::from("- client: local\n  fun: test.ping\n"),
            100,
        )
        .await
        .unwrap();
        assert_eq!(lowstates(parsed.data).unwrap().len(), 1);
        let text = headers(&[("content-type", "text/plain")]);
        let parsed = read(&text, Body::from("hello"), 100).await.unwrap();
        assert_eq!(parsed.data.unwrap(), Value::from("hello"));
    }

    #[test]
    fn forms_as_salt_api() {
        let v = form("client=local&tgt=*&fun=test.arg&arg=1&arg=two&arg=k%3Dv&kwarg={a: 1}");
        assert_eq!(v.get("client").unwrap(), &Value::from("local"));
        assert_eq!(
            v.get("arg").unwrap(),
            &Value::Array(vec![Value::Int(1), Value::from("two"), Value::from("k=v")])
        );
        assert_eq!(v.get("kwarg").unwrap().get("a").unwrap(), &Value::Int(1));
        let v = form("fun=test.ping&arg=x");
        assert_eq!(v.get("arg").unwrap(), &Value::Array(vec![Value::from("x")]));
    }

    #[test]
    fn session_from_header_then_cookie() {
        let h = headers(&[("cookie", "a=b; session_id=abc"), ("x-auth-token", "def")]);
        assert_eq!(session_id(&h).unwrap(), "def");
        let h = headers(&[("cookie", "a=b; session_id=abc")]);
        assert_eq!(session_id(&h).unwrap(), "abc");
        assert!(session_id(&HeaderMap::new()).is_none());
        assert_eq!(
            query_param(Some("x=1&token=t%20u"), "token").unwrap(),
            "t u"
        );
    }
}
