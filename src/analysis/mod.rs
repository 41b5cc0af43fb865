//! Sentiment analysis: pure computation, no I/O beyond the reader it is handed, no async.
//!
//! - [`vader`] scores one text exactly as `vaderSentiment==3.3.2` does ([`polarity_scores`]).
//! - [`input`] turns an input (plain text, CSV, JSONL, or in-memory documents) into
//!   self-contained chunks of items, validating UTF-8 on the way.
//! - [`report`] folds scored items into the [`Report`] a job stores and the pages draw.
//!
//! [`analyze`] ties them together: one thread reads chunks, a batch of chunks is split into
//! sentences and scored on all cores (rayon), and the results are folded in text order. Between
//! batches it reports progress and asks whether to stop, and it hands each batch's items to the
//! caller (the worker stores them for download). Memory is bounded by the batch size, whatever the
//! input size.

pub mod agreement;
pub mod exact;
pub mod groups;
pub mod input;
pub mod lang;
pub mod lexicon;
pub mod pytext;
pub mod report;
pub mod vader;

use std::io::Read;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use report::{Highlight, Label, LabelCounts, Report};
pub use vader::{Scorer, Scores, polarity_scores};

use input::{
    Chunk, Chunker, CsvChunker, DocumentChunker, Fields, JsonlChunker, Record, Source, TextChunker,
};

/// Longest single item (a CSV field, a JSONL line, a run of text without a line feed) read whole.
pub const MAX_ITEM_BYTES: usize = 8 << 20;

/// How an input is cut into items.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A document split into sentences (Unicode sentence boundaries).
    Text,
    /// One item per row, from the text column.
    Csv,
    /// One item per line: `{"text": "...", "id": ...}`.
    Jsonl,
    /// In-memory documents, one item each.
    Documents,
}

/// A format name that is none of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown format {0:?}")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Ok(match s {
            "text" => Format::Text,
            "csv" => Format::Csv,
            "jsonl" => Format::Jsonl,
            "documents" => Format::Documents,
            _ => return Err(UnknownFormat(s.to_owned())),
        })
    }
}

impl Format {
    /// The format's name, as stored and as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Documents => "documents",
        }
    }

    /// The format a file name suggests (`.csv`, `.jsonl`/`.ndjson`, anything else is text).
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Format::Csv
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Format::Jsonl
        } else {
            Format::Text
        }
    }

    /// The format of a media type, or None when it is not one we read.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/plain" => Some(Format::Text),
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                Some(Format::Jsonl)
            }
            _ => None,
        }
    }
}

/// What went wrong with an input; every message is written for the person who supplied it.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(
        "invalid UTF-8 on line {line} at byte offset {byte_offset}: the input must be UTF-8 text"
    )]
    InvalidUtf8 { line: u64, byte_offset: u64 },
    #[error("nothing to analyse: the input has no text")]
    Empty,
    #[error("{}", no_text_column_message(.wanted, .columns))]
    NoTextColumn {
        wanted: Option<String>,
        columns: Vec<String>,
    },
    #[error("{}", unknown_column_message(.role, .wanted, .columns))]
    UnknownColumn {
        role: &'static str,
        wanted: String,
        columns: Vec<String>,
    },
    #[error("line {line}: {message}")]
    BadRecord { line: u64, message: String },
    #[error("{what} is longer than the {} MiB limit for one item", .limit >> 20)]
    ItemTooLarge { what: String, limit: usize },
    #[error("the analysis was cancelled")]
    Cancelled,
    #[error("could not store the scored items: {0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("could not read the input: {0}")]
    Io(#[source] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AnalysisError {
    /// A stable, machine-readable code for API error bodies and job rows.
    pub fn code(&self) -> &'static str {
        match self {
            AnalysisError::InvalidUtf8 { .. } => "invalid_utf8",
            AnalysisError::Empty => "empty_input",
            AnalysisError::NoTextColumn { .. } => "no_text_column",
            AnalysisError::UnknownColumn { .. } => "unknown_column",
            AnalysisError::BadRecord { .. } => "bad_record",
            AnalysisError::ItemTooLarge { .. } => "item_too_large",
            AnalysisError::Cancelled => "cancelled",
            AnalysisError::Sink(_) => "storage_error",
            AnalysisError::Io(_) => "read_error",
            AnalysisError::Internal(_) => "internal",
        }
    }

    /// True when the input itself is at fault: retrying cannot help.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            AnalysisError::InvalidUtf8 { .. }
                | AnalysisError::Empty
                | AnalysisError::NoTextColumn { .. }
                | AnalysisError::UnknownColumn { .. }
                | AnalysisError::BadRecord { .. }
                | AnalysisError::ItemTooLarge { .. }
        )
    }
}

fn no_text_column_message(wanted: &Option<String>, columns: &[String]) -> String {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    match wanted {
        Some(w) => format!("the CSV has no column named \"{w}\"; its columns are: {list}"),
        None => format!(
            "the CSV has no text column (looked for {}); its columns are: {list}. Name the column to use",
            input::TEXT_COLUMNS.join(", ")
        ),
    }
}

fn unknown_column_message(role: &str, wanted: &str, columns: &[String]) -> String {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let part = match role {
        "group_by" => "to group by",
        "rating" => "to use as the rating",
        _ => "to use as the id",
    };
    format!("there is no column \"{wanted}\" {part}; the columns are: {list}")
}

/// One scored item, borrowed from the chunk it came from.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// 0-based position in the input.
    pub position: u64,
    pub id: Option<&'a str>,
    pub text: &'a str,
    pub scores: Scores,
    /// The row the item came from, or its offsets in a plain-text document.
    pub source: SourceRef<'a>,
    /// The item's language (ISO 639-1), when it could be told.
    pub lang: Option<&'static str>,
}

/// An item's [`Source`], borrowed (a sentence's offsets are computed, not stored in the chunk).
#[derive(Clone, Copy, Debug)]
pub enum SourceRef<'a> {
    Stored(&'a Source),
    Span { start: u64, end: u64 },
}

impl SourceRef<'_> {
    pub fn to_owned(self) -> Source {
        match self {
            SourceRef::Stored(s) => s.clone(),
            SourceRef::Span { start, end } => Source::Span { start, end },
        }
    }
}

/// Hooks the caller gives [`analyze`]: progress, cancellation and the scored items.
pub trait Observer {
    /// `done` of `total` input bytes are analysed (`total` is 0 when unknown).
    fn progress(&mut self, _done: u64, _total: u64) {}
    /// Asked between batches; returning true stops the analysis with [`AnalysisError::Cancelled`].
    fn is_cancelled(&mut self) -> bool {
        false
    }
    /// The items of one batch, in input order.
    fn items(
        &mut self,
        _items: &[Item<'_>],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// An observer that wants nothing.
impl Observer for () {}

/// How to read an input.
#[derive(Clone, Debug)]
pub struct Options {
    pub format: Format,
    /// The columns (CSV) or keys (JSONL) of the text, id, grouping and rating.
    pub fields: Fields,
    /// Input size in bytes when known, for progress.
    pub total_bytes: Option<u64>,
    /// Tell each item's language (on by default; off only to measure what it costs).
    pub languages: bool,
}

impl Options {
    pub fn new(format: Format) -> Self {
        Options {
            format,
            fields: Fields::default(),
            total_bytes: None,
            languages: true,
        }
    }
}

/// Analyse an input read from `reader`.
pub fn analyze<R: Read>(
    reader: R,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Report, AnalysisError> {
    match options.format {
        Format::Text => run(TextChunker::new(reader), Format::Text, options, observer),
        Format::Jsonl => {
            let chunker = JsonlChunker::new(reader, &options.fields);
            run(chunker, Format::Jsonl, options, observer)
        }
        Format::Csv => {
            let chunker = CsvChunker::new(reader, &options.fields)?;
            run(chunker, Format::Csv, options, observer)
        }
        Format::Documents => Err(AnalysisError::Internal(
            "documents are analysed with analyze_documents".into(),
        )),
    }
}

/// Analyse in-memory documents, one item each (the API's batch form).
pub fn analyze_documents<I>(docs: I, observer: &mut dyn Observer) -> Result<Report, AnalysisError>
where
    I: IntoIterator<Item = (Option<String>, String)>,
{
    let docs: Vec<_> = docs.into_iter().collect();
    let mut options = Options::new(Format::Documents);
    options.total_bytes = Some(docs.iter().map(|(_, t)| t.len() as u64).sum());
    run(
        DocumentChunker::new(docs.into_iter()),
        Format::Documents,
        &options,
        observer,
    )
}

/// A sentence's byte range, its code-point offsets within its chunk, scores and language.
type TextScore = (
    std::ops::Range<usize>,
    (u64, u64),
    Scores,
    Option<&'static str>,
);

/// Scores of one chunk: (byte range or record index, scores) in order.
enum Scored {
    /// The chunk's text, each sentence's byte range, code-point offsets within the chunk and
    /// scores, and the chunk's length in code points.
    Text(String, Vec<TextScore>, u64),
    Records(Vec<Record>, Vec<(Scores, Option<&'static str>)>),
}

/// Fewest sentences or records per parallel task. A chunk with no more than this is scored on
/// the calling thread: handing it to the thread pool (and waiting for it there, when the caller
/// is outside the pool) costs more than scoring it.
const MIN_PER_TASK: usize = 256;

fn score_chunk(chunk: Chunk, languages: bool) -> Scored {
    let detect = |text: &str| if languages { lang::detect(text) } else { None };
    match chunk {
        Chunk::Text(text) => {
            let ranges = Chunk::text_ranges(&text);
            // Code-point offsets, counted once along the chunk (ranges are in text order).
            let mut offsets = Vec::with_capacity(ranges.len());
            let (mut byte, mut chars) = (0usize, 0u64);
            for r in &ranges {
                chars += count_chars(&text[byte..r.start]);
                let start = chars;
                chars += count_chars(&text[r.clone()]);
                offsets.push((start, chars));
                byte = r.end;
            }
            let total_chars = chars + count_chars(&text[byte..]);
            let score = |(r, o): (&std::ops::Range<usize>, &(u64, u64))| {
                let sentence = &text[r.clone()];
                (r.clone(), *o, polarity_scores(sentence), detect(sentence))
            };
            let scores = if ranges.len() <= MIN_PER_TASK {
                ranges.iter().zip(&offsets).map(score).collect()
            } else {
                ranges
                    .par_iter()
                    .zip(offsets.par_iter())
                    .with_min_len(MIN_PER_TASK)
                    .map(score)
                    .collect()
            };
            Scored::Text(text, scores, total_chars)
        }
        Chunk::Records(records) => {
            let score = |r: &Record| (polarity_scores(&r.text), detect(&r.text));
            let scores = if records.len() <= MIN_PER_TASK {
                records.iter().map(score).collect()
            } else {
                records
                    .par_iter()
                    .with_min_len(MIN_PER_TASK)
                    .map(score)
                    .collect()
            };
            Scored::Records(records, scores)
        }
    }
}

/// Code points in `s` (every byte that does not continue a UTF-8 sequence starts one).
fn count_chars(s: &str) -> u64 {
    s.as_bytes().iter().filter(|&&b| (b as i8) >= -0x40).count() as u64
}

/// Chunks of [`input::CHUNK_BYTES`] one analysis holds and scores at once: enough to keep every
/// core busy, few enough to bound its memory whatever the input's size.
pub fn chunks_in_flight() -> usize {
    rayon::current_num_threads().max(1) * 2
}

fn run<C: Chunker>(
    mut chunker: C,
    format: Format,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Report, AnalysisError> {
    let started = Instant::now();
    let total = options.total_bytes.unwrap_or(0);
    let batch_size = chunks_in_flight();
    let mut aggregator = report::Aggregator::new();
    let mut groups = options
        .fields
        .group_by
        .as_ref()
        .map(|_| groups::GroupAggregator::new(options.fields.group_by_period));
    let mut ratings = agreement::RatingAggregator::new();
    let mut languages = report::LanguageCounter::default();
    let mut position = 0u64;
    // Code points of the plain-text chunks before this one.
    let mut chars_before = 0u64;
    loop {
        if observer.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        let mut batch = Vec::with_capacity(batch_size);
        while batch.len() < batch_size {
            match chunker.next_chunk()? {
                Some(chunk) => batch.push(chunk),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        // A lone chunk (a small input) is scored here; see MIN_PER_TASK.
        let scored: Vec<Scored> = if batch.len() == 1 {
            batch
                .into_iter()
                .map(|c| score_chunk(c, options.languages))
                .collect()
        } else {
            batch
                .into_par_iter()
                .map(|c| score_chunk(c, options.languages))
                .collect()
        };
        let mut batch_items: Vec<Item<'_>> = Vec::new();
        for s in &scored {
            match s {
                Scored::Text(text, scores, chars) => {
                    for (r, (start, end), sc, lang) in scores {
                        batch_items.push(Item {
                            position,
                            id: None,
                            text: &text[r.clone()],
                            scores: *sc,
                            source: SourceRef::Span {
                                start: chars_before + start,
                                end: chars_before + end,
                            },
                            lang: *lang,
                        });
                        position += 1;
                    }
                    chars_before += chars;
                }
                Scored::Records(records, scores) => {
                    for (record, (sc, lang)) in records.iter().zip(scores) {
                        batch_items.push(Item {
                            position,
                            id: record.id.as_deref(),
                            text: &record.text,
                            scores: *sc,
                            source: SourceRef::Stored(&record.source),
                            lang: *lang,
                        });
                        if let Some(g) = groups.as_mut() {
                            g.push(record.group.as_deref().unwrap_or(""), sc.compound);
                        }
                        if let Some(rating) = record.rating {
                            ratings.push(rating, sc.compound);
                        }
                        position += 1;
                    }
                }
            }
        }
        for it in &batch_items {
            aggregator.push(it.position, it.id, it.text, it.scores.compound);
            languages.push(it.lang);
        }
        observer.items(&batch_items).map_err(AnalysisError::Sink)?;
        observer.progress(chunker.consumed(), total.max(chunker.consumed()));
    }
    if position == 0 {
        return Err(AnalysisError::Empty);
    }
    let rating_note = chunker.rating_unusable();
    let roles = chunker.roles();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut report = aggregator.finish(format, (elapsed_ms * 1000.0).round() / 1000.0);
    report.columns = chunker.columns();
    report.id_column = roles.id;
    report.text_column = roles.text;
    report.groups = match (roles.group_by, groups) {
        (Some(column), Some(g)) => Some(report::GroupSummary {
            column,
            grouping: g.finish(),
        }),
        _ => None,
    };
    // A rating column found by name is reported only when it was used and held ratings; a
    // chosen one always is.
    let chosen = options.fields.rating.is_some();
    report.agreement = roles
        .rating
        .filter(|_| rating_note.is_none())
        .map(|column| report::RatingSummary {
            column,
            agreement: ratings.finish(),
        })
        .filter(|r| chosen || r.agreement.pairs > 0);
    report.rating_note = rating_note;
    report.languages = options.languages.then(|| languages.finish(report.items));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_document_is_scored_sentence_by_sentence() {
        let text = "I love this product. It broke after a day, which is terrible.\nNeutral line";
        let r = analyze(text.as_bytes(), &Options::new(Format::Text), &mut ()).unwrap();
        assert_eq!(r.items, 3);
        assert_eq!(r.labels.positive, 1);
        assert_eq!(r.labels.negative, 1);
        assert_eq!(r.most_positive[0].text, "I love this product.");
        assert_eq!(
            r.most_positive[0].compound,
            polarity_scores("I love this product.").compound
        );
        assert_eq!(r.most_negative[0].position, 1);
    }

    #[test]
    fn blank_input_is_nothing_to_analyse() {
        for format in [Format::Text, Format::Jsonl] {
            let err = analyze(" \n\t\n".as_bytes(), &Options::new(format), &mut ()).unwrap_err();
            assert!(matches!(err, AnalysisError::Empty), "{format:?}: {err}");
        }
    }

    #[test]
    fn a_csv_without_a_text_column_lists_its_columns() {
        let err = analyze(
            "name,stars\nbob,5\n".as_bytes(),
            &Options::new(Format::Csv),
            &mut (),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"name\", \"stars\""), "{message}");
        assert_eq!(err.code(), "no_text_column");
    }

    #[test]
    fn csv_picks_the_review_column_and_the_named_one() {
        let csv = "id,review,note\n7,\"Great, really great!\",awful\n8,meh,wonderful\n";
        let r = analyze(csv.as_bytes(), &Options::new(Format::Csv), &mut ()).unwrap();
        assert_eq!(r.items, 2);
        assert_eq!(r.most_positive[0].id.as_deref(), Some("7"));
        let mut opts = Options::new(Format::Csv);
        opts.fields.text = Some("NOTE".into());
        let r = analyze(csv.as_bytes(), &opts, &mut ()).unwrap();
        assert_eq!(r.most_negative[0].text, "awful");
    }

    #[test]
    fn a_bad_jsonl_line_is_named() {
        let input = "{\"text\": \"good\"}\n\n{\"text\": 5}\n";
        let err = analyze(input.as_bytes(), &Options::new(Format::Jsonl), &mut ()).unwrap_err();
        assert!(
            matches!(err, AnalysisError::BadRecord { line: 3, .. }),
            "{err}"
        );
    }

    struct Recorder {
        seen: Vec<(u64, String)>,
        progress: Vec<(u64, u64)>,
        cancel_after: Option<usize>,
    }

    impl Observer for Recorder {
        fn progress(&mut self, done: u64, total: u64) {
            self.progress.push((done, total));
        }
        fn is_cancelled(&mut self) -> bool {
            self.cancel_after.is_some_and(|n| self.progress.len() >= n)
        }
        fn items(
            &mut self,
            items: &[Item<'_>],
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.seen
                .extend(items.iter().map(|i| (i.position, i.text.to_owned())));
            Ok(())
        }
    }

    #[test]
    fn items_arrive_in_order_with_progress_up_to_the_total() {
        let text = "Happy days. Sad nights.\n".repeat(200_000);
        let mut opts = Options::new(Format::Text);
        opts.total_bytes = Some(text.len() as u64);
        let mut rec = Recorder {
            seen: vec![],
            progress: vec![],
            cancel_after: None,
        };
        let r = analyze(text.as_bytes(), &opts, &mut rec).unwrap();
        assert_eq!(r.items, 400_000);
        assert_eq!(rec.seen.len(), 400_000);
        assert!(
            rec.seen
                .iter()
                .enumerate()
                .all(|(i, (p, _))| *p == i as u64)
        );
        assert_eq!(rec.seen[1].1, "Sad nights.");
        assert!(rec.progress.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(
            *rec.progress.last().unwrap(),
            (text.len() as u64, text.len() as u64)
        );
    }

    #[test]
    fn cancelling_stops_between_batches() {
        let text = "Happy days. Sad nights.\n".repeat(500_000);
        let mut rec = Recorder {
            seen: vec![],
            progress: vec![],
            cancel_after: Some(1),
        };
        let err = analyze(text.as_bytes(), &Options::new(Format::Text), &mut rec).unwrap_err();
        assert!(matches!(err, AnalysisError::Cancelled));
        assert!(rec.seen.len() < 1_000_000);
    }
}
