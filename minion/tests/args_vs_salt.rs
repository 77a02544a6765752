//! Brine's argument handling against stock Salt's, case by case.
//!
//! `fixtures/salt_args.json` is produced by `fixtures/salt_args.py`, which
//! runs Salt 3007's own `yamlify_arg`, `parse_input` and
//! `load_args_and_kwargs` (plus a real Python call for `TypeError` texts).
//! The one documented difference: an integer beyond 64 bits, which Salt
//! keeps as a Python int that msgpack cannot carry, stays text in Brine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brine_minion::args::{
    Kwargs, Signature, condition_input, load_args_and_kwargs, parse_input, yamlify_arg,
};
use brine_protocol::Value;
use serde_json::Value as Json;

const FIXTURE: &str = include_str!("fixtures/salt_args.json");

/// A typed value from the fixture; `Err(digits)` for an int beyond 64 bits.
fn dec(v: &Json) -> Result<Value, String> {
    let t = v["t"].as_str().unwrap();
    let text = || v["v"].as_str().unwrap().to_owned();
    Ok(match t {
        "nil" => Value::Nil,
        "bool" => Value::Bool(v["v"].as_bool().unwrap()),
        "int" => {
            let s = text();
            if let Ok(i) = s.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(u) = s.parse::<u64>() {
                Value::UInt(u)
            } else {
                return Err(s);
            }
        }
        "float" => Value::Float(match text().as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            s => s.parse().unwrap(),
        }),
        "str" => Value::from(text()),
        "list" => Value::Array(
            v["v"]
                .as_array()
                .unwrap()
                .iter()
                .map(dec)
                .collect::<Result<_, _>>()?,
        ),
        "map" => Value::Map(
            v["v"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| Ok((dec(&pair[0])?, dec(&pair[1])?)))
                .collect::<Result<_, String>>()?,
        ),
        other => panic!("unexpected type {other}"),
    })
}

/// Equality that treats NaN as equal to NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x.is_nan() && y.is_nan()) || x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        _ => a == b,
    }
}

fn fixture() -> Json {
    serde_json::from_str(FIXTURE).unwrap()
}

#[test]
fn yamlify_arg_matches_salt() {
    let fx = fixture();
    let cases = fx["yamlify"].as_array().unwrap();
    assert!(cases.len() > 100);
    let mut failures = Vec::new();
    for case in cases {
        let input = case[0].as_str().unwrap();
        let expected = match dec(&case[1]) {
            Ok(v) => v,
            // beyond 64 bits: Brine keeps the text
            Err(_) => Value::from(input),
        };
        let got = yamlify_arg(input);
        if !same(&got, &expected) {
            failures.push(format!("{input:?}: salt {expected:?}, brine {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_input_matches_salt() {
    let fx = fixture();
    let mut failures = Vec::new();
    for case in fx["parse_input"].as_array().unwrap() {
        let input = match dec(&case[0]).unwrap() {
            Value::Array(items) => items,
            other => panic!("not a list: {other:?}"),
        };
        let expected = dec(&case[1]).unwrap();
        let (args, kwargs) = parse_input(&input, &[]);
        let got = Value::Array(condition_input(args, &kwargs));
        if !same(&got, &expected) {
            failures.push(format!("{input:?}: salt {expected:?}, brine {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn signature(fun: &str) -> Signature {
    match fun {
        "echo" => Signature::new().required("text"),
        "ping" => Signature::new(),
        "arg" | "item" => Signature::new().varargs().varkw(),
        "get" => Signature::new()
            .required("key")
            .optional("default")
            .optional("delimiter")
            .optional("ordered"),
        "exception" => Signature::new().optional("message"),
        "three" => Signature::new().required("a").required("b").required("c"),
        other => panic!("no signature for {other}"),
    }
}

#[test]
fn load_args_and_kwargs_matches_salt() {
    let fx = fixture();
    let mut failures = Vec::new();
    for case in fx["load_args"].as_array().unwrap() {
        let fun = case["fun"].as_str().unwrap();
        let Value::Array(args) = dec(&case["args"]).unwrap() else {
            panic!("args not a list")
        };
        let data = dec(&case["data"]).unwrap();
        let data = (!data.is_nil()).then_some(data);
        let sig = signature(fun);
        let got = load_args_and_kwargs(&sig, &args, data.as_ref())
            .and_then(|(a, kw)| sig.bind(fun, &a, &kw).map(|()| (a, kw)));
        let result = &case["result"];
        let ok = match (&got, result.get("error")) {
            (Err(msg), Some(err)) => msg == err["msg"].as_str().unwrap(),
            (Ok((a, kw)), None) => {
                let kw_value = kw.to_value();
                same(&Value::Array(a.clone()), &dec(&result["args"]).unwrap())
                    && same(&kw_value, &dec(&result["kwargs"]).unwrap())
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{fun} {args:?}: salt {result}, brine {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kwargs_keep_order_and_replace_in_place() {
    let mut kw: Kwargs = [("b", Value::Int(1)), ("a", Value::Int(2))]
        .into_iter()
        .collect();
    kw.insert("b", 3);
    assert_eq!(
        kw.iter().map(|(k, v)| (k, v.clone())).collect::<Vec<_>>(),
        vec![("b", Value::Int(3)), ("a", Value::Int(2))]
    );
}
