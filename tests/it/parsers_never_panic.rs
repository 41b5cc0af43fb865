//! Properties of the input parsers: fed arbitrary bytes and odd-but-structured text (CSV with
//! quotes and line breaks, JSONL lines, JSON of any shape, invalid UTF-8), every parser answers
//! `Ok` or `Err` and never panics; where an invariant is cheap to state, it is checked too.
//!
//! The parsers: `sentiq::web::input` (the web process's checks before a job is written),
//! `sentiq::analysis::input` (the worker's readers and chunkers), `sentiq::analysis::analyze`
//! (the whole analysis), `polarity_scores` and `sentiq::web::parse_id`.

use std::io::{self, Read};

use actix_web::ResponseError;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use sentiq::analysis::input::{
    Chunk, Chunker, CsvChunker, Fields, JsonlChunker, TextChunker, Utf8Reader, read_error,
};
use sentiq::analysis::report::{ARC_SEGMENTS, HISTOGRAM_BINS, TOP_N};
use sentiq::analysis::{
    AnalysisError, Format, Item, Observer, Options, Report, analyze, analyze_documents,
    polarity_scores, pytext,
};
use sentiq::web::errors::ApiError;
use sentiq::web::input::{from_json, from_raw, title_of_text, utf8};
use serde_json::{Value, json};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// 256 cases per property (`PROPTEST_CASES` sets another number, for a longer hunt). A failure
/// is printed with its shrunk input; none is saved to a file.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
        max_shrink_iters: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Pieces of text that parsers and the analyzer treat specially.
const SPECIALS: &[&str] = &[
    ".",
    "!",
    "?",
    "...",
    "!!!",
    "?!",
    ",",
    ";",
    ":",
    "\"",
    "'",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "  ",
    "\u{a0}",
    "\u{3000}",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{1c}",
    "\u{1f}",
    "\u{feff}",
    "\u{200b}",
    "\u{0}",
    ":)",
    ":(",
    "😀",
    "💔",
    "👍🏽",
    "NOT",
    "not",
    "very",
    "good",
    "bad",
    "but",
    "never",
    "kinda",
    "LOL",
    "GREAT",
    "café",
    "日本語",
    "Ж",
    "e\u{301}",
    "Mr.",
    "U.S.",
    "\u{5d0}\u{5d1}",
    "ﬁ",
    "ǅ",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z']{1,8}",
        4 => select(SPECIALS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ]
}

/// Text of words, punctuation, odd whitespace, emoji and other scripts.
fn texty() -> impl Strategy<Value = String> {
    vec(piece(), 0..48).prop_map(|p| p.concat())
}

/// Mostly text, with stray bytes, cut-off sequences and byte-order marks here and there.
fn texty_bytes() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        6 => piece().prop_map(String::into_bytes),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => select(vec![
            b"\xE2\x82".to_vec(),
            b"\xF0\x9F\x98".to_vec(),
            b"\xC3".to_vec(),
            b"\xED\xA0\x80".to_vec(),
            b"\xC0\xAF".to_vec(),
            b"\xFF".to_vec(),
            BOM.to_vec(),
            b"\xEF\xBB".to_vec(),
        ]),
    ];
    prop_oneof![
        3 => vec(part, 0..48).prop_map(|p| p.concat()),
        1 => vec(any::<u8>(), 0..256),
    ]
}

/// Short runs of whitespace (by Rust's or by Python's rules), byte-order marks and at most one
/// word: where "blank" is decided.
fn blankish() -> impl Strategy<Value = String> {
    let space = select(vec![
        " ", "\n", "\r\n", "\t", "\u{b}", "\u{c}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{1f}",
        "\u{85}", "\u{a0}", "\u{2028}", "\u{3000}", "\u{feff}", "\u{200b}",
    ]);
    (
        any::<bool>(),
        vec(space, 0..6),
        proptest::option::weighted(0.2, "[a-z.!]{1,4}"),
    )
        .prop_map(|(bom, spaces, word)| {
            let mut s = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            s.push_str(&spaces.concat());
            if let Some(w) = word {
                s.push_str(&w);
            }
            s
        })
}

/// CSV-like text: delimiters, quotes (doubled, unbalanced), line breaks of every kind.
fn csvish() -> impl Strategy<Value = String> {
    let header = select(vec![
        "",
        "text,id\n",
        "id,review\n",
        "\u{feff}text\n",
        "\"text\"\r\n",
    ]);
    let part = select(vec![
        ",", ",", "\"", "\"\"", "\n", "\r\n", "\r", "text", "id", "review", " ", "a", "b c", "😀",
        "\t", ";", "#", "\u{1c}", "good", "awful",
    ]);
    (header, vec(part, 0..64)).prop_map(|(h, p)| format!("{h}{}", p.concat()))
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![texty(), blankish()].prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["text", "documents", "id"]).prop_map(str::to_owned),
        1 => "[a-z]{0,5}",
    ]
}

/// JSON of any shape, with the submission's field names often in it.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((json_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `{"documents": [...]}` whose documents are often, not always, well formed.
fn json_documents() -> impl Strategy<Value = Value> {
    let doc = prop_oneof![
        4 => (json_leaf(), texty()).prop_map(|(id, t)| json!({"id": id, "text": t})),
        1 => blankish().prop_map(|t| json!({"text": t})),
        1 => json_value(),
    ];
    vec(doc, 0..6).prop_map(|docs| json!({ "documents": docs }))
}

/// One JSONL line (without its line feed): mostly good objects, some not.
fn jsonl_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (json_leaf(), texty()).prop_map(|(id, t)| json!({"id": id, "text": t}).to_string()),
        1 => texty().prop_map(|t| json!({ "text": t }).to_string()),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => select(vec!["", " ", "\t \r", "\u{1c}", "{\"text\": ", "{\"text\": 5}", "[]", "null"])
            .prop_map(str::to_owned),
        1 => texty().prop_map(|t| t.replace('\n', " ")),
    ]
}

fn jsonl() -> impl Strategy<Value = String> {
    (
        vec(jsonl_line(), 0..12),
        select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, sep, trailing)| {
            let mut s = lines.join(sep);
            if trailing {
                s.push_str(sep);
            }
            s
        })
}

/// Any upload body: text-like bytes, CSV-like or JSONL-like text.
fn upload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        texty_bytes(),
        csvish().prop_map(String::into_bytes),
        jsonl().prop_map(String::into_bytes),
    ]
}

/// Read sizes for [`Pieces`]: the first is at least 1, a 0 stands for an `Interrupted` error.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    (1usize..9, vec(0usize..9, 0..8)).prop_map(|(first, rest)| {
        let mut v = vec![first];
        v.extend(rest);
        v
    })
}

/// A reader that hands out its bytes a few at a time (and is interrupted now and then), so
/// multi-byte characters, the byte-order mark and line feeds straddle reads.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    turn: usize,
}

impl<'a> Pieces<'a> {
    fn new(data: &'a [u8], sizes: &'a [usize]) -> Self {
        Pieces {
            data,
            sizes,
            turn: 0,
        }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        if size == 0 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = size.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Oracles and helpers.

/// Where `std` finds the first invalid UTF-8: (1-based line, byte offset).
fn first_bad_byte(bytes: &[u8]) -> Option<(u64, u64)> {
    std::str::from_utf8(bytes).err().map(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        (line, at as u64)
    })
}

fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// The codes `from_json` and `from_raw` may refuse a body with.
const JSON_CODES: &[&str] = &[
    "invalid_utf8",
    "invalid_json",
    "missing_field",
    "empty_input",
];
const RAW_CODES: &[&str] = &[
    "invalid_utf8",
    "empty_input",
    "no_text_column",
    "bad_record",
    "item_too_large",
];

/// An error of the web checks: a 4xx with a code, never a server error.
fn assert_client_error(e: &ApiError, allowed: &[&str]) -> Result<(), TestCaseError> {
    let status = e.status_code().as_u16();
    prop_assert!((400..500).contains(&status), "status {status} for {e:?}");
    prop_assert!(allowed.contains(&e.code()), "code {} for {e:?}", e.code());
    prop_assert!(!e.to_string().trim().is_empty());
    Ok(())
}

/// An error of the analysis that blames the input, not the program.
fn assert_bad_input(e: &AnalysisError) -> Result<(), TestCaseError> {
    prop_assert!(e.is_bad_input(), "not a bad-input error: {e:?}");
    Ok(())
}

/// Blank as the analysis sees it: nothing but Python `isspace` whitespace (which includes
/// U+001C..U+001F) after one leading byte-order mark.
fn is_blank(s: &str) -> bool {
    pytext::strip(s.strip_prefix('\u{feff}').unwrap_or(s)).is_empty()
}

/// What `from_json` should answer for this value: `None` when accepted, else the error code.
fn expected_json_code(v: &Value) -> Option<&'static str> {
    let Value::Object(map) = v else {
        return Some("invalid_json");
    };
    // Every field of a wrong type is found before what is missing or blank.
    let text = map.get("text");
    if text.is_some_and(|t| !t.is_string()) {
        return Some("invalid_json");
    }
    let docs = match map.get("documents") {
        None => None,
        Some(Value::Array(docs)) => Some(docs),
        Some(_) => return Some("invalid_json"),
    };
    for d in docs.into_iter().flatten() {
        let Some(o) = d.as_object() else {
            return Some("invalid_json");
        };
        if o.get("text").is_some_and(|t| !t.is_string()) {
            return Some("invalid_json");
        }
        match o.get("id") {
            None | Some(Value::Null | Value::String(_) | Value::Number(_)) => {}
            Some(_) => return Some("invalid_json"),
        }
    }
    let docs = match (text, docs) {
        (Some(_), Some(_)) => return Some("invalid_json"),
        (Some(t), None) if is_blank(t.as_str().unwrap()) => return Some("empty_input"),
        (Some(_), None) => return None,
        (None, None) => return Some("missing_field"),
        (None, Some(docs)) => docs,
    };
    if docs.iter().any(|d| d.get("text").is_none()) {
        return Some("missing_field");
    }
    if docs
        .iter()
        .all(|d| pytext::strip(d["text"].as_str().unwrap()).is_empty())
    {
        return Some("empty_input");
    }
    None
}

/// All items of a chunker, in order.
fn drain_records<C: Chunker>(mut c: C) -> Result<Vec<(Option<String>, String)>, AnalysisError> {
    let mut out = Vec::new();
    let mut last_consumed = 0;
    while let Some(chunk) = c.next_chunk()? {
        match chunk {
            Chunk::Records(r) => out.extend(r.into_iter().map(|r| (r.id, r.text))),
            Chunk::Text(_) => panic!("a record chunker gave text"),
        }
        assert!(c.consumed() >= last_consumed, "consumed went backwards");
        last_consumed = c.consumed();
    }
    Ok(out)
}

/// What the JSONL chunker should make of `text`, line by line.
fn expected_jsonl(text: &str) -> Result<Vec<(Option<String>, String)>, u64> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i as u64 + 1;
        if pytext::strip(line).is_empty() {
            continue;
        }
        let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(line) else {
            return Err(line_no);
        };
        let Some(Value::String(t)) = o.remove("text") else {
            return Err(line_no);
        };
        let id = match o.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(line_no),
        };
        out.push((id, t));
    }
    Ok(out)
}

/// Keeps what `analyze` hands its observer.
#[derive(Default)]
struct Recorder {
    items: Vec<(u64, Option<String>, String, [f64; 4])>,
    progress: Vec<(u64, u64)>,
}

impl Observer for Recorder {
    fn progress(&mut self, done: u64, total: u64) {
        self.progress.push((done, total));
    }
    fn items(
        &mut self,
        items: &[Item<'_>],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.items.extend(items.iter().map(|i| {
            let s = i.scores;
            (
                i.position,
                i.id.map(str::to_owned),
                i.text.to_owned(),
                [s.neg, s.neu, s.pos, s.compound],
            )
        }));
        Ok(())
    }
}

fn in_unit(x: f64, lo: f64) -> bool {
    x.is_finite() && x >= lo - 1e-9 && x <= 1.0 + 1e-9
}

/// The invariants of every report and of the items handed to the observer on the way.
fn check_report(report: &Report, seen: &Recorder) -> Result<(), TestCaseError> {
    let n = report.items;
    prop_assert!(n >= 1);
    prop_assert_eq!(seen.items.len() as u64, n);
    for (i, (position, _, _, s)) in seen.items.iter().enumerate() {
        prop_assert_eq!(*position, i as u64, "positions are 0, 1, 2, ...");
        prop_assert!(
            in_unit(s[0], 0.0) && in_unit(s[1], 0.0) && in_unit(s[2], 0.0),
            "{s:?}"
        );
        prop_assert!(in_unit(s[3], -1.0), "{s:?}");
    }
    let l = &report.labels;
    prop_assert_eq!(l.positive + l.neutral + l.negative, n);
    prop_assert_eq!(report.histogram.len(), HISTOGRAM_BINS);
    prop_assert_eq!(report.histogram.iter().sum::<u64>(), n);
    prop_assert_eq!(report.arc.len() as u64, n.min(ARC_SEGMENTS as u64));
    prop_assert!(
        report.arc.iter().all(|&a| in_unit(a, -1.0)),
        "{:?}",
        report.arc
    );
    prop_assert!(in_unit(report.mean_compound, -1.0));
    prop_assert!(report.most_positive.len() <= TOP_N && report.most_negative.len() <= TOP_N);
    prop_assert!(
        report
            .most_positive
            .iter()
            .all(|h| h.compound > 0.0 && h.position < n)
    );
    prop_assert!(
        report
            .most_negative
            .iter()
            .all(|h| h.compound < 0.0 && h.position < n)
    );
    for w in seen.progress.windows(2) {
        prop_assert!(
            w[0].0 <= w[1].0,
            "progress went backwards: {:?}",
            seen.progress
        );
    }
    prop_assert!(seen.progress.iter().all(|&(done, total)| done <= total));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config())]

    /// The web's UTF-8 check agrees with `std` and names the line and offset of the bad byte.
    #[test]
    fn the_utf8_check_agrees_with_std_and_locates_the_first_bad_byte(bytes in texty_bytes()) {
        match (utf8(&bytes), first_bad_byte(&bytes)) {
            (Ok(text), None) => prop_assert_eq!(text.as_bytes(), &bytes[..]),
            (Err(e), Some((line, at))) => {
                assert_client_error(&e, &["invalid_utf8"])?;
                let message = e.to_string();
                let expected = format!("line {line} at byte offset {at}");
                prop_assert!(message.contains(&expected), "{}", message);
            }
            (got, want) => {
                prop_assert!(false, "utf8() = {:?}, std: {:?}", got.map(str::len), want)
            }
        }
    }

    /// The streaming UTF-8 reader passes valid text through unchanged (less a leading
    /// byte-order mark) however the reads are cut, and reports the same place as `std` otherwise.
    #[test]
    fn the_utf8_reader_passes_text_through_whatever_the_read_sizes(
        bytes in texty_bytes(),
        sizes in read_sizes(),
    ) {
        let mut out = Vec::new();
        let got = Utf8Reader::new(Pieces::new(&bytes, &sizes)).read_to_end(&mut out);
        match (got, first_bad_byte(&bytes)) {
            (Ok(_), None) => prop_assert_eq!(&out[..], without_bom(&bytes)),
            (Err(e), Some((line, at))) => match read_error(e) {
                AnalysisError::InvalidUtf8 { line: l, byte_offset: o } => {
                    prop_assert_eq!((l, o), (line, at));
                }
                other => prop_assert!(false, "{other:?}"),
            },
            (got, want) => prop_assert!(false, "read = {:?}, std says {:?}", got, want),
        }
    }

    /// Text chunks put back together are the input (less a leading byte-order mark).
    #[test]
    fn text_chunks_rebuild_the_input(bytes in texty_bytes(), sizes in read_sizes()) {
        let mut chunker = TextChunker::new(Pieces::new(&bytes, &sizes));
        let mut rebuilt = Vec::new();
        let result = loop {
            match chunker.next_chunk() {
                Ok(Some(Chunk::Text(t))) => {
                    prop_assert!(!t.is_empty(), "an empty chunk");
                    rebuilt.extend_from_slice(t.as_bytes());
                }
                Ok(Some(Chunk::Records(_))) => prop_assert!(false, "records from text"),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match (result, first_bad_byte(&bytes)) {
            (Ok(()), None) => prop_assert_eq!(&rebuilt[..], without_bom(&bytes)),
            (Err(AnalysisError::InvalidUtf8 { line, byte_offset }), Some(want)) => {
                prop_assert_eq!((line, byte_offset), want);
            }
            (got, want) => prop_assert!(false, "chunking = {:?}, std says {:?}", got, want),
        }
    }

    /// Sentences are non-empty, trimmed, in order, apart and inside the text.
    #[test]
    fn sentence_ranges_are_ordered_trimmed_and_inside_the_text(text in texty()) {
        let mut end = 0;
        for r in Chunk::text_ranges(&text) {
            prop_assert!(r.start >= end && r.start < r.end && r.end <= text.len(), "{:?}", r);
            prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            let s = &text[r.clone()];
            prop_assert_eq!(pytext::strip(s), s);
            end = r.end;
        }
        let any_text = !pytext::strip(&text).is_empty();
        prop_assert_eq!(any_text, !Chunk::text_ranges(&text).is_empty());
    }

    /// JSONL: the items of the good lines in order, or the number of the first bad line.
    #[test]
    fn jsonl_gives_the_items_in_order_or_names_the_first_bad_line(
        text in jsonl(),
        bom in any::<bool>(),
        sizes in read_sizes(),
    ) {
        let input = if bom { format!("\u{feff}{text}") } else { text };
        let got = drain_records(JsonlChunker::new(Pieces::new(input.as_bytes(), &sizes), &Fields::default()));
        match (got, expected_jsonl(&input)) {
            (Ok(items), Ok(want)) => prop_assert_eq!(items, want),
            (Err(AnalysisError::BadRecord { line, .. }), Err(want)) => prop_assert_eq!(line, want),
            (got, want) => prop_assert!(false, "got {:?}, expected {:?}", got, want),
        }
    }

    /// JSONL of arbitrary bytes: items, or an error that blames the input.
    #[test]
    fn jsonl_of_any_bytes_never_panics(bytes in texty_bytes()) {
        if let Err(e) = drain_records(JsonlChunker::new(&bytes[..], &Fields::default())) {
            assert_bad_input(&e)?;
        }
    }

    /// Whatever a CSV writer writes (quotes, commas, line breaks in fields) reads back as the
    /// same items, from the text column or the named one, with their ids.
    #[test]
    fn csv_written_by_a_csv_writer_reads_back_item_for_item(
        rows in vec(("[a-z0-9 \",\r\n]{0,6}", texty(), texty()), 0..12),
        order in 0usize..3,
        named in any::<bool>(),
    ) {
        let header = [
            ["id", "text", "extra"],
            ["extra", "text", "id"],
            ["text", "extra", "id"],
        ][order];
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header).unwrap();
        for (id, text, extra) in &rows {
            let field = |name: &str| match name {
                "id" => id.as_str(),
                "text" => text.as_str(),
                _ => extra.as_str(),
            };
            w.write_record(header.map(field)).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let column = named.then_some("EXTRA");
        let items = drain_records(CsvChunker::new(&bytes[..], &Fields::text(column.map(str::to_owned))).expect("a text column"))
            .map_err(|e| {
                TestCaseError::fail(format!("{e:?} on {:?}", String::from_utf8_lossy(&bytes)))
            })?;
        let want: Vec<(Option<String>, String)> = rows
            .iter()
            .map(|(id, t, x)| (Some(id.clone()), if named { x.clone() } else { t.clone() }))
            .collect();
        prop_assert_eq!(items, want);
    }

    /// CSV-like text of any shape: items (at most one per line), or an error that blames the
    /// input.
    #[test]
    fn csv_of_any_shape_never_panics(
        text in csvish(),
        column in proptest::option::of(select(vec!["text", "ID", "", " review ", "nope"])),
        sizes in read_sizes(),
    ) {
        match CsvChunker::new(Pieces::new(text.as_bytes(), &sizes), &Fields::text(column.map(str::to_owned))) {
            Err(e) => assert_bad_input(&e)?,
            Ok(chunker) => match drain_records(chunker) {
                Err(e) => assert_bad_input(&e)?,
                Ok(items) => {
                    let lines = text.bytes().filter(|&b| b == b'\n' || b == b'\r').count();
                    let n = items.len();
                    prop_assert!(n <= lines, "{} items, {} line breaks", n, lines);
                }
            },
        }
    }

    /// CSV of arbitrary bytes: never a panic, never an error that blames the program.
    #[test]
    fn csv_of_any_bytes_never_panics(bytes in texty_bytes()) {
        match CsvChunker::new(&bytes[..], &Fields::default()) {
            Err(e) => assert_bad_input(&e)?,
            Ok(c) => {
                if let Err(e) = drain_records(c) {
                    assert_bad_input(&e)?;
                }
            }
        }
    }

    /// A JSON body of any shape is accepted exactly when it is a submission, and refused with
    /// the contract's 4xx code otherwise; an accepted one stores what was sent.
    #[test]
    fn json_bodies_of_any_shape_get_the_contract_answer(
        value in prop_oneof![json_value(), json_documents()],
    ) {
        let body = serde_json::to_vec(&value).unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        match (from_json(&body), expected_json_code(&sent)) {
            (Ok(s), None) => match s.format {
                Format::Text => {
                    prop_assert_eq!(s.input.whole().unwrap(), sent["text"].as_str().unwrap().as_bytes())
                }
                Format::Documents => {
                    let stored: Value = serde_json::from_slice(s.input.whole().unwrap()).unwrap();
                    let docs = sent["documents"].as_array().unwrap();
                    prop_assert_eq!(stored.as_array().unwrap().len(), docs.len());
                    for (st, d) in stored.as_array().unwrap().iter().zip(docs) {
                        prop_assert_eq!(&st["text"], &d["text"]);
                        let id = match &d["id"] {
                            Value::Number(n) => Value::String(n.to_string()),
                            other => other.clone(),
                        };
                        prop_assert_eq!(&st["id"], &id);
                    }
                }
                other => prop_assert!(false, "format {:?}", other),
            },
            (Err(e), Some(code)) => assert_client_error(&e, &[code])?,
            (got, want) => {
                let got = got.map(|s| s.format);
                prop_assert!(false, "from_json = {:?}, expected {:?}", got, want)
            }
        }
    }

    /// JSON nested deep, to past the parser's limit (128), or never closed, is refused as
    /// invalid JSON, without a stack overflow.
    #[test]
    fn deeply_nested_json_is_invalid_json_not_a_crash(
        depth in 100usize..3000,
        open_only in any::<bool>(),
    ) {
        let closing = if open_only { String::new() } else { "]".repeat(depth) };
        let body = format!("{{\"text\": {}\"x\"{closing}}}", "[".repeat(depth));
        let e = from_json(body.as_bytes()).expect_err("nested text is refused");
        assert_client_error(&e, &["invalid_json"])?;
    }

    /// Arbitrary bytes as a JSON body: a 4xx, never a panic or a server error.
    #[test]
    fn json_bodies_of_any_bytes_are_refused_with_a_4xx(bytes in texty_bytes()) {
        match from_json(&bytes) {
            Ok(s) => prop_assert!(!s.input.is_empty()),
            Err(e) => assert_client_error(&e, JSON_CODES)?,
        }
    }

    /// A raw upload is accepted exactly when it is UTF-8, not blank and (CSV) has a text column,
    /// and then stored byte for byte.
    #[test]
    fn raw_uploads_are_accepted_as_sent_or_refused_with_a_4xx(
        bytes in upload(),
        format in select(vec![Format::Text, Format::Csv, Format::Jsonl]),
        column in proptest::option::of(select(vec!["text", "review", "", "x"])),
    ) {
        let utf8_ok = std::str::from_utf8(&bytes).ok();
        match from_raw(bytes.clone(), format, Fields::text(column.map(str::to_owned)), None) {
            Ok(s) => {
                prop_assert_eq!(s.input.whole().unwrap(), &bytes[..]);
                prop_assert_eq!(s.format, format);
                let text = utf8_ok.expect("accepted bytes are UTF-8");
                prop_assert!(!is_blank(text));
                prop_assert!(!s.title.contains('\n'));
                if format == Format::Csv {
                    prop_assert!(CsvChunker::new(text.as_bytes(), &s.fields).is_ok());
                }
            }
            Err(e) => {
                assert_client_error(&e, RAW_CODES)?;
                if utf8_ok.is_none() {
                    prop_assert_eq!(e.code(), "invalid_utf8");
                }
            }
        }
    }

    /// The analysis of any text: sentence items in order, each a trimmed piece of the input
    /// found after the one before, and a report whose counts add up; or `Empty` exactly when
    /// the text is blank.
    #[test]
    fn analysing_text_gives_ordered_items_from_the_input_and_a_consistent_report(
        text in prop_oneof![texty(), blankish()],
        bom in any::<bool>(),
    ) {
        let input = if bom { format!("\u{feff}{text}") } else { text };
        // The analysis drops one leading byte-order mark (the text may start with its own).
        let body = input.strip_prefix('\u{feff}').unwrap_or(&input);
        let mut seen = Recorder::default();
        let mut options = Options::new(Format::Text);
        options.total_bytes = Some(input.len() as u64);
        match analyze(input.as_bytes(), &options, &mut seen) {
            Ok(report) => {
                check_report(&report, &seen)?;
                let mut from = 0;
                for (_, id, item, _) in &seen.items {
                    prop_assert!(id.is_none());
                    prop_assert!(!item.is_empty() && pytext::strip(item) == item);
                    let at = body[from..].find(item.as_str());
                    prop_assert!(at.is_some(), "{:?} not in the rest: {:?}", item, &body[from..]);
                    from += at.unwrap() + item.len();
                }
            }
            Err(AnalysisError::Empty) => prop_assert!(pytext::strip(body).is_empty(), "{:?}", body),
            Err(e) => prop_assert!(false, "{e:?}"),
        }
    }

    /// Text the web process accepts never fails the analysis as bad input, nor as empty: the
    /// web's blank check counts whitespace as the analysis does (Python's `isspace`, which
    /// includes U+001C..U+001F, after a leading byte-order mark).
    #[test]
    fn text_the_web_accepts_is_analysed(
        bytes in prop_oneof![texty_bytes(), blankish().prop_map(String::into_bytes)],
    ) {
        if from_raw(bytes.clone(), Format::Text, Fields::default(), None).is_ok() {
            match analyze(&bytes[..], &Options::new(Format::Text), &mut ()) {
                Ok(r) => prop_assert!(r.items >= 1),
                Err(e) => prop_assert!(false, "accepted, then failed: {e:?}"),
            }
        }
    }

    /// CSV and JSONL analyses of any bytes: a consistent report, or an error that blames the
    /// input; never a panic.
    #[test]
    fn analysing_csv_or_jsonl_of_any_bytes_never_panics(
        bytes in upload(),
        format in select(vec![Format::Csv, Format::Jsonl, Format::Text]),
    ) {
        let mut seen = Recorder::default();
        match analyze(&bytes[..], &Options::new(format), &mut seen) {
            Ok(report) => {
                prop_assert_eq!(report.format, format);
                check_report(&report, &seen)?;
            }
            Err(e) => assert_bad_input(&e)?,
        }
    }

    /// A batch of documents: one item per document, in order, with its id and text.
    #[test]
    fn a_batch_gives_one_item_per_document_in_order(
        docs in vec((proptest::option::of("[a-z0-9]{0,4}"), texty()), 0..10),
    ) {
        let mut seen = Recorder::default();
        match analyze_documents(docs.clone(), &mut seen) {
            Ok(report) => {
                check_report(&report, &seen)?;
                let items: Vec<(Option<String>, String)> =
                    seen.items.iter().map(|(_, id, t, _)| (id.clone(), t.clone())).collect();
                prop_assert_eq!(items, docs);
            }
            Err(AnalysisError::Empty) => prop_assert!(docs.is_empty()),
            Err(e) => prop_assert!(false, "{e:?}"),
        }
    }

    /// VADER scores of any string are finite and in range; neg + neu + pos is 1 (to the
    /// rounding) or all three are 0.
    #[test]
    fn scores_of_any_string_are_in_range(text in prop_oneof![texty(), any::<String>()]) {
        let s = polarity_scores(&text);
        prop_assert!(in_unit(s.neg, 0.0) && in_unit(s.neu, 0.0) && in_unit(s.pos, 0.0), "{s:?}");
        prop_assert!(in_unit(s.compound, -1.0), "{s:?}");
        let sum = s.neg + s.neu + s.pos;
        prop_assert!(sum == 0.0 || (sum - 1.0).abs() <= 0.002, "{s:?}");
    }

    /// Job ids: a UUID in any form parses to its canonical form; anything else is a 404.
    #[test]
    fn job_ids_parse_only_as_uuids(
        raw in prop_oneof![
            any::<String>(),
            any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
            any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
            any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).urn().to_string().to_uppercase()),
            "[0-9a-f-]{30,40}",
        ],
    ) {
        match (sentiq::web::parse_id(&raw), uuid::Uuid::parse_str(&raw)) {
            (Ok(id), Ok(u)) => prop_assert_eq!(id, u.hyphenated().to_string()),
            (Err(e), Err(_)) => assert_client_error(&e, &["not_found"])?,
            (got, want) => prop_assert!(false, "parse_id = {:?}, uuid says {:?}", got, want),
        }
    }

    /// Titles of any text are one line.
    #[test]
    fn titles_are_one_line(text in prop_oneof![texty(), any::<String>()]) {
        let title = title_of_text(&text);
        prop_assert!(!title.contains('\n') && !title.contains('\r'), "{:?}", title);
        prop_assert_eq!(title.is_empty(), text.split_whitespace().next().is_none());
    }

    /// Media types of any spelling: one of ours or none, never a panic.
    #[test]
    fn media_types_of_any_spelling_are_read_case_insensitively(
        essence in select(vec![
            "text/plain",
            "TEXT/CSV",
            "Application/X-NDJSON",
            "application/jsonl",
            "application/json",
            "image/png",
            "",
        ]),
        params in "[ -~]{0,20}",
    ) {
        let media = format!("{essence}{params}");
        let got = Format::from_media_type(&media);
        if params.is_empty() || params.starts_with(';') {
            let want = match essence.to_ascii_lowercase().as_str() {
                "text/plain" => Some(Format::Text),
                "text/csv" => Some(Format::Csv),
                "application/x-ndjson" | "application/jsonl" => Some(Format::Jsonl),
                _ => None,
            };
            prop_assert_eq!(got, want);
        }
    }
}
