//! Exact parity with the reference VADER (`vaderSentiment==3.3.2`).
//!
//! The expected numbers in `tests/data/vader/*.reference.jsonl` were written by the reference
//! itself (`bash scripts/regen-reference.sh`); these tests read the inputs the way the reference
//! tool reads them and demand equality of all four scores, not closeness.

use std::path::PathBuf;

use sentiq::analysis::{Scorer, Scores};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vader")
        .join(name)
}

/// The reference tool's line reading: UTF-8, a leading BOM dropped, split on "\n", the file's
/// final newline making no extra line, one trailing "\r" per line removed.
fn reference_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(name)).expect("test data is UTF-8");
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

fn reference_scores(name: &str) -> Vec<(Option<String>, Scores)> {
    std::fs::read_to_string(data(name))
        .expect("reference file present")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("reference line is JSON");
            let f = |k: &str| v[k].as_f64().expect("score is a number");
            (
                v.get("id").and_then(|i| i.as_str()).map(str::to_owned),
                Scores {
                    neg: f("neg"),
                    neu: f("neu"),
                    pos: f("pos"),
                    compound: f("compound"),
                },
            )
        })
        .collect()
}

/// Score every text and list the ones that differ from the reference (at most 20 shown).
fn assert_parity(texts: &[(Option<String>, String)], expected: &[(Option<String>, Scores)]) {
    assert_eq!(texts.len(), expected.len(), "one reference line per input");
    let mut scorer = Scorer::new();
    let mut mismatches = Vec::new();
    for ((id, text), (ref_id, want)) in texts.iter().zip(expected) {
        assert_eq!(id, ref_id, "inputs and references are in the same order");
        let got = scorer.score(text);
        // Compare bit patterns except for the sign of zero, which JSON round-trips as Python
        // prints it ("-0.0") and `==` would ignore.
        let same = |a: f64, b: f64| a == b && a.is_sign_negative() == b.is_sign_negative();
        if !(same(got.neg, want.neg)
            && same(got.neu, want.neu)
            && same(got.pos, want.pos)
            && same(got.compound, want.compound))
        {
            mismatches.push(format!(
                "{:?}\n    got  {got:?}\n    want {want:?}",
                text.chars().take(120).collect::<String>()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} texts differ from the reference, e.g.:\n{}",
        mismatches.len(),
        texts.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Ground-truth files: `id<TAB>rating<TAB>text`, blank lines skipped as the reference tool does.
fn ground_truth(set: &str) {
    let texts: Vec<(Option<String>, String)> = reference_lines(&format!("{set}_GroundTruth.txt"))
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let id = parts.next().expect("id").to_owned();
            let _rating = parts.next().expect("rating");
            (Some(id), parts.next().expect("text").to_owned())
        })
        .collect();
    let expected = reference_scores(&format!("{set}_GroundTruth.reference.jsonl"));
    assert_parity(&texts, &expected);
}

#[test]
fn every_tweet_of_the_ground_truth_set_scores_exactly_as_the_reference() {
    ground_truth("tweets");
}

#[test]
fn every_amazon_review_snippet_scores_exactly_as_the_reference() {
    ground_truth("amazonReviewSnippets");
}

#[test]
fn every_hand_made_hard_case_scores_exactly_as_the_reference() {
    let texts: Vec<(Option<String>, String)> = reference_lines("hard_cases.txt")
        .into_iter()
        .map(|t| (None, t))
        .collect();
    assert!(
        texts.len() >= 500,
        "the hard-case corpus has only {} cases",
        texts.len()
    );
    let expected = reference_scores("hard_cases.reference.jsonl");
    assert_parity(&texts, &expected);
}

#[test]
fn the_ground_truth_copies_are_the_published_files() {
    // The published files' sizes and item counts (their sha256 sums are in
    // tests/data/vader/README.md): a re-encoded or line-ending-converted copy would make the
    // parity tests above compare against something else.
    let sizes = [
        ("tweets_GroundTruth.txt", 389_886),
        ("amazonReviewSnippets_GroundTruth.txt", 373_157),
    ];
    for (name, size) in sizes {
        let len = std::fs::metadata(data(name)).expect("file present").len();
        assert_eq!(len, size, "{name} was modified");
    }
    assert_eq!(reference_lines("tweets_GroundTruth.txt").len(), 4_200);
    assert_eq!(
        reference_lines("amazonReviewSnippets_GroundTruth.txt").len(),
        3_708
    );
}
