use super::*;
use crate::testkit::*;

type Finals = BTreeMap<String, Option<Vec<u8>>>;

fn finals(entries: &[(&str, Option<&str>)]) -> Finals {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

fn writes() -> History {
    Builder::new()
        .on("a", 0, set("1"), Output::Stored, 0, 1)
        .on("a", 1, set("2"), Output::Stored, 0, 1)
        .on("b", 0, set("x"), Output::Stored, 2, 3)
        .on("b", 1, append("y"), Output::Stored, 4, 5)
        .on("b", 2, Input::Prepend(b"<".to_vec()), ind(), 6, 0)
        .on("c", 0, set("5"), Output::Stored, 0, 1)
        .on("c", 1, Input::Incr(3), Output::Number(8), 2, 3)
        .on("c", 2, Input::Incr(10), ind(), 4, 0)
        .on("d", 0, set("gone"), Output::Stored, 0, 1)
        .on("d", 1, Input::Delete, Output::Deleted, 2, 3)
        .on("e", 0, set("v"), ind(), 0, 0)
        .history()
}

#[test]
fn no_peers_or_no_history_is_ok() {
    assert!(check(&History::default(), &[]).is_ok());
    let report = check(&History::default(), &[finals(&[("k", None)])]);
    assert!(report.is_ok(), "{report}");
}

#[test]
fn agreeing_explained_finals_are_ok() {
    let agreed = finals(&[
        ("a", Some("2")),
        ("b", Some("<xy")),
        ("c", Some("18")),
        ("d", None),
        ("e", None),
    ]);
    let report = check(&writes(), &[agreed.clone(), agreed.clone(), agreed]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.keys_checked, 5);
    for (key, value) in [
        ("a", "1"),
        ("b", "xy"),
        ("b", "x"),
        ("c", "8"),
        ("c", "15"),
        ("e", "v"),
    ] {
        let f = finals(&[(key, Some(value))]);
        let report = check(&writes(), &[f.clone(), f]);
        assert!(report.is_ok(), "{key}={value}: {report}");
    }
}

#[test]
fn diverged_peers_are_a_violation() {
    let report = check(
        &writes(),
        &[finals(&[("a", Some("1"))]), finals(&[("a", Some("2"))])],
    );
    let v = report.violation().expect("violation");
    assert_eq!(v.key, "a");
    assert!(v.explanation.contains("peer 1: \"2\""), "{v}");
    // A peer missing the key counts as missing.
    let report = check(&writes(), &[finals(&[("a", Some("1"))]), Finals::new()]);
    assert!(report.is_violation());
}

#[test]
fn values_nobody_wrote_are_a_violation() {
    for (key, value) in [
        ("a", "3"),
        ("b", "yx"),
        ("b", "z"),
        ("c", "22"),
        ("c", "x"),
        ("z", "1"),
    ] {
        let f = finals(&[(key, Some(value))]);
        let report = check(&writes(), &[f.clone(), f]);
        assert!(report.is_violation(), "{key}={value}: {report}");
    }
}

#[test]
fn a_lost_acknowledged_write_is_a_violation() {
    let f = finals(&[("a", None)]);
    let report = check(&writes(), &[f.clone(), f]);
    let v = report.violation().expect("violation");
    assert!(v.explanation.contains("nothing deleted it"), "{v}");
}
