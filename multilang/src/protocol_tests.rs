use proptest::prelude::*;

use super::*;

/// Messages that Storm's libraries send.
const VALID: &[&str] = &[
    r#"{"command": "emit", "tuple": ["a", 1, 2.5, null, true, [1, {"k": "v"}]]}"#,
    r#"{"command": "emit", "anchors": ["12", 13], "stream": "words", "task": 4, "tuple": ["w"], "need_task_ids": false}"#,
    r#"{"command": "emit", "id": {"offset": 17, "partition": "p"}, "tuple": [1]}"#,
    r#"{"command": "ack", "id": "12"}"#,
    r#"{"command": "fail", "id": 12}"#,
    r#"{"command": "sync"}"#,
    r#"{"command": "log", "msg": "hello", "level": 3}"#,
    r#"{"command": "error", "msg": "Traceback (most recent call last): ..."}"#,
    r#"{"command": "metrics", "name": "latency", "params": [1, 2]}"#,
    r#"{"pid": 4242}"#,
];

#[test]
fn a_lone_string_is_one_anchor_as_storm_accepts() {
    let Ok(ShellCommand::Emit(emit)) =
        decode_command(r#"{"command": "emit", "tuple": [1], "anchors": "12"}"#)
    else {
        panic!("an emit");
    };
    assert_eq!(emit.anchors, vec!["12".to_owned()]);
}

#[test]
fn storm_messages_decode() {
    assert_eq!(
        decode_command(VALID[1]),
        Ok(ShellCommand::Emit(EmitCommand {
            tuple: vec![OwnedValue::Str("w".into())],
            stream: Some("words".into()),
            anchors: vec!["12".into(), "13".into()],
            task: Some(TaskId(4)),
            id: None,
            need_task_ids: false,
        }))
    );
    let Ok(ShellCommand::Emit(emit)) = decode_command(VALID[2]) else {
        panic!("an emit");
    };
    assert_eq!(
        emit.id.as_deref(),
        Some(r#"{"offset": 17, "partition": "p"}"#)
    );
    assert!(emit.need_task_ids);
    assert_eq!(emit.task, None);
    assert_eq!(decode_command(VALID[3]), Ok(ShellCommand::Ack("12".into())));
    assert_eq!(
        decode_command(VALID[4]),
        Ok(ShellCommand::Fail("12".into()))
    );
    assert_eq!(decode_command(VALID[5]), Ok(ShellCommand::Sync));
    assert_eq!(
        decode_command(VALID[6]),
        Ok(ShellCommand::Log {
            msg: "hello".into(),
            level: LogLevel::Warn
        })
    );
    assert_eq!(
        decode_command(VALID[8]),
        Ok(ShellCommand::Metrics {
            name: "latency".into(),
            params: Some("[1, 2]".into())
        })
    );
    assert_eq!(decode_pid(VALID[9]), Ok(4242));
    assert_eq!(
        decode_command(r#"{"command": "emit", "task": 0, "tuple": []}"#)
            .map(|c| matches!(c, ShellCommand::Emit(EmitCommand { task: None, .. }))),
        Ok(true)
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let cases = [
        (
            "{\"command\": \"emit\", \"tuple\": [1,}",
            "not valid JSON: expected value at line 1 column 33",
        ),
        ("[1, 2]", "a message must be a JSON object, found an array"),
        (
            "\"sync\"",
            "a message must be a JSON object, found a string",
        ),
        ("{\"id\": \"3\"}", "the message has no \"command\""),
        (
            "{\"command\": 7}",
            "\"message\": field \"command\" must be a string, found 7",
        ),
        (
            "{\"command\": \"next\"}",
            "unknown command \"next\" (expected emit, ack, fail, sync, log, error or metrics)",
        ),
        (
            "{\"command\": \"emit\"}",
            "\"emit\" needs a \"tuple\" field",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [1], \"task\": \"x\"}",
            "\"emit\": field \"task\" must be a task id (a positive integer), found \"x\"",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [1], \"task\": -2}",
            "\"emit\": field \"task\" must be a task id (a positive integer), found -2",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [1], \"anchors\": 7}",
            "\"emit\": field \"anchors\" must be an array of tuple ids, or one tuple id as a string, found 7",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [1], \"anchors\": [[7]]}",
            "\"emit\": field \"anchors\" must be a tuple id (a string or an integer), found [7]",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [1], \"need_task_ids\": 1}",
            "\"emit\": field \"need_task_ids\" must be true or false, found 1",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [99999999999999999999]}",
            "\"emit\": tuple[0]: integer 99999999999999999999 does not fit in 64 bits (i64 or u64)",
        ),
        (
            "{\"command\": \"emit\", \"tuple\": [NaN]}",
            "not valid JSON: expected value at line 1 column 31 (JSON has no NaN or Infinity)",
        ),
        ("{\"command\": \"ack\"}", "\"ack\" needs a \"id\" field"),
        (
            "{\"command\": \"fail\", \"id\": 1.5}",
            "\"fail\": field \"id\" must be a tuple id (a string or an integer), found 1.5",
        ),
        (
            "{\"command\": \"log\", \"msg\": \"x\", \"level\": 9}",
            "\"log\": field \"level\" must be 0 to 4 or trace, debug, info, warn, error, found 9",
        ),
        (
            "{\"command\": \"metrics\", \"name\": \"\"}",
            "\"metrics\": field \"name\" must be a metric name, found an empty string",
        ),
        (
            "{\"command\": \"sync\", \"command\": \"sync\"}",
            "not valid JSON: duplicate field `command` at line 1 column 29",
        ),
        (
            "",
            "not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, expected)| {
            let got =
                decode_command(text).map_or_else(|error| error.to_string(), |ok| format!("{ok:?}"));
            (got != *expected).then(|| format!("{text:?}\n   got {got:?}\n  want {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        decode_pid("{\"pid\": -3}").unwrap_err().to_string(),
        "the handshake reply must be {\"pid\": <positive integer>}, found pid -3"
    );
    assert!(decode_pid("{\"command\": \"sync\"}").is_err());
}

#[test]
fn encodings_are_what_storm_libraries_read() {
    let mut out = Vec::new();
    encode_spout_command(&mut out, &SpoutCommand::Ack("{\"k\": 1}".into()));
    encode_spout_command(&mut out, &SpoutCommand::Next);
    encode_task_ids(&mut out, &[TaskId(3), TaskId(4)]);
    encode_heartbeat(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"command\":\"ack\",\"id\":{\"k\": 1}}\nend\n{\"command\":\"next\"}\nend\n[3,4]\nend\n\
         {\"id\":\"0\",\"comp\":\"__system\",\"stream\":\"__heartbeat\",\"task\":-1,\"tuple\":[]}\nend\n"
    );
    let mut record = Vec::new();
    squall_core::tuple::encode_record(
        &mut record,
        TaskId(1),
        TaskId(2),
        16,
        &[],
        &[
            squall_core::Value::Str("a \"b\""),
            squall_core::Value::U64(7),
        ],
    );
    let view = squall_core::tuple::TupleRef::parse(&record).unwrap();
    let mut out = Vec::new();
    let source = TupleSource {
        component: "split",
        stream: "default",
        task: 2,
    };
    encode_bolt_tuple(&mut out, 17, source, view.fields()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"id\":\"17\",\"comp\":\"split\",\"stream\":\"default\",\"task\":2,\"tuple\":[\"a \\\"b\\\"\",7]}\nend\n"
    );
}

/// One edit of a message's text.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just('{'),
        Just('}'),
        Just('['),
        Just(']'),
        Just('"'),
        Just(','),
        Just(':'),
        Just('\\'),
        Just('-'),
        Just('9'),
        Just('e'),
        Just('n'),
        Just('\n'),
        Just('\u{0}'),
        any::<char>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting.clone()).prop_map(|(at, c)| Mutation::Insert(at, c)),
        (any::<usize>(), interesting).prop_map(|(at, c)| Mutation::Replace(at, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for mutation in mutations {
        let len = chars.len().max(1);
        match *mutation {
            Mutation::Delete(at) => {
                if !chars.is_empty() {
                    chars.remove(at % len);
                }
            }
            Mutation::Insert(at, c) => chars.insert(at % (chars.len() + 1), c),
            Mutation::Replace(at, c) => {
                if !chars.is_empty() {
                    chars[at % len] = c;
                }
            }
            Mutation::Truncate(at) => chars.truncate(at % (chars.len() + 1)),
            Mutation::Duplicate(at, n) => {
                if !chars.is_empty() {
                    let start = at % len;
                    let end = (start + n).min(chars.len());
                    let copy: Vec<char> = chars[start..end].to_vec();
                    chars.splice(end..end, copy);
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_messages_never_panic(
        base in 0..VALID.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let text = apply(VALID[base], &mutations);
        match decode_command(&text) {
            Ok(_) => {}
            Err(error) => prop_assert!(error.to_string().len() > 10, "{error}"),
        }
        let _ = decode_pid(&text);
    }

    #[test]
    fn random_text_never_panics(text in any::<String>()) {
        if let Err(error) = decode_command(&text) {
            prop_assert!(!error.to_string().is_empty());
        }
        let _ = decode_pid(&text);
    }

    #[test]
    fn random_json_objects_never_panic(
        command in prop_oneof![
            Just("emit".to_owned()), Just("ack".to_owned()), Just("fail".to_owned()),
            Just("log".to_owned()), Just("metrics".to_owned()), Just("error".to_owned()), ".{0,6}",
        ],
        fields in prop::collection::vec(
            (
                prop_oneof![Just("tuple"), Just("id"), Just("anchors"), Just("task"), Just("stream"),
                            Just("need_task_ids"), Just("msg"), Just("level"), Just("name"), Just("params")],
                prop_oneof![Just("null".to_owned()), Just("true".to_owned()), Just("[]".to_owned()),
                            Just("{}".to_owned()), any::<i64>().prop_map(|n| n.to_string()),
                            any::<f64>().prop_map(|f| format!("{f:e}")), "\"[a-z0-9]{0,5}\"",
                            "\\[(-?[0-9]{1,22}, ?){0,3}\\]"],
            ),
            0..6,
        ),
    ) {
        let mut seen = std::collections::HashSet::new();
        let mut text = format!("{{\"command\": {command:?}");
        for (name, value) in fields {
            if seen.insert(name) {
                text.push_str(&format!(", {name:?}: {value}"));
            }
        }
        text.push('}');
        if let Err(error) = decode_command(&text) {
            prop_assert!(error.to_string().len() > 10, "{error}");
        }
    }
}
