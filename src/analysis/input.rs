//! Reading an input into chunks of items, with bounded memory and precise errors.
//!
//! [`Utf8Reader`] validates the bytes as they stream through and knows the line and byte offset
//! of any invalid sequence. On top of it each format has a chunker that hands out [`Chunk`]s of
//! roughly [`CHUNK_BYTES`]: plain text is cut after a line feed (where Unicode always ends a
//! sentence, so cutting there changes nothing), CSV and JSONL after a whole record. A chunk is
//! self-contained, so chunks can be segmented and scored on any thread.

use std::io::{self, BufRead, Read};
use std::ops::Range;

use super::{AnalysisError, MAX_ITEM_BYTES};

/// Target size of one chunk of input.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Candidate names of the text column of a CSV file, in order of preference (case-insensitive).
pub const TEXT_COLUMNS: &[&str] = &["text", "review", "body", "content", "comment"];

/// Where the input went wrong, carried through `io::Error` out of the readers.
#[derive(Debug)]
pub struct InvalidUtf8 {
    pub line: u64,
    pub byte_offset: u64,
}

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid UTF-8 on line {} at byte offset {}",
            self.line, self.byte_offset
        )
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Size of the [`Utf8Reader`]'s buffer when it starts. Most jobs are a few sentences: a full
/// buffer, zeroed for every job, cost the worker more than scoring them (BENCHMARKS.md).
const FIRST_READ_BUFFER: usize = 8 * 1024;
/// Largest size of the [`Utf8Reader`]'s buffer: it doubles from [`FIRST_READ_BUFFER`] each time
/// a read fills it, so a large input is read in 256 KiB pieces after a few reads.
const READ_BUFFER: usize = 256 * 1024;

/// Passes bytes through only once they are known to be valid UTF-8.
pub struct Utf8Reader<R> {
    inner: R,
    /// Fixed buffer: `buf[pos..valid]` is validated and not yet handed out, `buf[valid..len]` an
    /// incomplete sequence waiting for its next bytes.
    buf: Box<[u8]>,
    pos: usize,
    valid: usize,
    len: usize,
    /// Bytes handed out so far (including a skipped byte-order mark).
    consumed: u64,
    /// Line feeds in the bytes already dropped from the buffer, for error messages.
    lines: u64,
    eof: bool,
    bom_checked: bool,
    /// The last read filled the buffer: more is likely to come, so the next one may grow it.
    filled: bool,
}

impl<R: Read> Utf8Reader<R> {
    pub fn new(inner: R) -> Self {
        Utf8Reader {
            inner,
            buf: vec![0; FIRST_READ_BUFFER].into_boxed_slice(),
            pos: 0,
            valid: 0,
            len: 0,
            consumed: 0,
            lines: 0,
            eof: false,
            bom_checked: false,
            filled: false,
        }
    }

    /// Bytes of input read so far (including a skipped byte-order mark).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Refill after everything validated was handed out (`pos == valid`).
    fn fill(&mut self) -> io::Result<()> {
        self.lines += memchr::memchr_iter(b'\n', &self.buf[..self.valid]).count() as u64;
        self.buf.copy_within(self.valid..self.len, 0);
        self.len -= self.valid;
        self.pos = 0;
        self.valid = 0;
        if self.filled && self.buf.len() < READ_BUFFER {
            let mut bigger = vec![0; (self.buf.len() * 2).min(READ_BUFFER)].into_boxed_slice();
            bigger[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.buf = bigger;
        }
        let space = self.buf.len() - self.len;
        let n = loop {
            match self.inner.read(&mut self.buf[self.len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.len += n;
        self.eof = n == 0;
        self.filled = n == space;
        if !self.bom_checked {
            if self.len < 3 && !self.eof {
                // Too little to tell whether the input starts with a byte-order mark.
                return Ok(());
            }
            self.bom_checked = true;
            if self.buf[..self.len].starts_with(b"\xEF\xBB\xBF") {
                // A byte-order mark is not text.
                self.buf.copy_within(3..self.len, 0);
                self.len -= 3;
                self.consumed += 3;
            }
        }
        match std::str::from_utf8(&self.buf[..self.len]) {
            Ok(_) => self.valid = self.len,
            Err(e) => {
                let good = e.valid_up_to();
                if e.error_len().is_some() || self.eof {
                    let before = &self.buf[..good];
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        InvalidUtf8 {
                            line: self.lines
                                + memchr::memchr_iter(b'\n', before).count() as u64
                                + 1,
                            byte_offset: self.consumed + good as u64,
                        },
                    ));
                }
                self.valid = good;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf8Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Utf8Reader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.valid && !self.eof {
            self.fill()?;
        }
        if self.pos == self.valid && self.eof && self.valid < self.len {
            // A sequence cut off by the end of the input: fill() reports it.
            self.fill()?;
        }
        Ok(&self.buf[self.pos..self.valid])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.valid - self.pos);
        self.consumed += n as u64;
        self.pos += n;
    }
}

/// Turn an error from the readers into the analysis error it stands for.
pub fn read_error(e: io::Error) -> AnalysisError {
    if e.get_ref().is_some_and(|inner| inner.is::<InvalidUtf8>()) {
        let inner = e.into_inner().expect("checked above");
        let bad = inner.downcast::<InvalidUtf8>().expect("checked above");
        return AnalysisError::InvalidUtf8 {
            line: bad.line,
            byte_offset: bad.byte_offset,
        };
    }
    AnalysisError::Io(e)
}

/// One self-contained piece of the input.
pub enum Chunk {
    /// Plain text; its sentences are found by the thread that scores it.
    Text(String),
    /// Ready-made items (CSV rows, JSONL lines, batch documents).
    Records(Vec<Record>),
}

/// One item of a CSV, JSONL or batch input, with what the analyst asked to be taken from its row.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub id: Option<String>,
    pub text: String,
    /// The row itself, so downloads can give it back with its scores.
    pub source: Source,
    /// The cell of the `group_by` column (trimmed; empty when the row has none).
    pub group: Option<String>,
    /// The value of the rating column, when the row has one.
    pub rating: Option<f64>,
}

impl Record {
    /// A record that is only an id and a text (a batch document).
    pub fn plain(id: Option<String>, text: String) -> Record {
        Record {
            id,
            text,
            ..Record::default()
        }
    }
}

/// Where an item came from, as the downloads give it back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// Nothing beyond the id and text (batch documents, and items stored before rows were kept).
    #[default]
    None,
    /// The cells of a CSV row, in column order (as many as the header names).
    Cells(Vec<String>),
    /// A JSONL line, exactly as written (without its line break and surrounding whitespace).
    Json(String),
    /// A sentence of a plain-text document: its offsets in the document in Unicode code points
    /// (`text[start:end]` in Python), end exclusive.
    Span { start: u64, end: u64 },
}

/// Which columns (CSV) or keys (JSONL) play which part, as the analyst named them; `None` means
/// "find it by name" for the text, id and rating, and "none" for the grouping.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by_period: Option<super::groups::Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
}

impl Fields {
    /// Only the text column named (or none): what every job stored before the other roles.
    pub fn text(column: Option<String>) -> Fields {
        Fields {
            text: column,
            ..Fields::default()
        }
    }

    /// True when no role but the text is set (the job row's `analysis_options` stays NULL).
    pub fn only_text(&self) -> bool {
        self.id.is_none()
            && self.group_by.is_none()
            && self.group_by_period.is_none()
            && self.rating.is_none()
    }
}

/// Candidate names of an id column, in order of preference (case-insensitive); after them, the
/// first column whose name ends in `_id`, `-id` or ` id`.
pub const ID_COLUMNS: &[&str] = &["id", "uuid"];
/// Candidate names of a rating column (case-insensitive).
pub const RATING_COLUMNS: &[&str] = &["rating", "stars", "score", "star_rating", "ratings"];

/// The index of the id column among `names`, found by name.
fn find_id(names: &[String]) -> Option<usize> {
    let find = |w: &str| names.iter().position(|n| n.trim().eq_ignore_ascii_case(w));
    ID_COLUMNS.iter().find_map(|c| find(c)).or_else(|| {
        names.iter().position(|n| {
            let n = n.trim().to_ascii_lowercase();
            n.len() > 3 && (n.ends_with("_id") || n.ends_with("-id") || n.ends_with(" id"))
        })
    })
}

/// A rating cell as a number: `Ok(None)` when blank, `Err` with a message when it is not a number.
pub fn rating_value(cell: &str, column: &str) -> Result<Option<f64>, String> {
    super::agreement::parse_rating(cell).map_err(|_| {
        let shown: String = cell.trim().chars().take(40).collect();
        format!(
            "the rating column \"{column}\" holds \"{shown}\", which is not a number; \
             give numbers (e.g. 4 or 3.5), leave the cell empty, or choose another rating column"
        )
    })
}

impl Chunk {
    pub fn text_ranges(text: &str) -> Vec<Range<usize>> {
        use unicode_segmentation::UnicodeSegmentation;
        text.split_sentence_bound_indices()
            .filter_map(|(start, s)| {
                let trimmed = super::pytext::strip(s);
                if trimmed.is_empty() {
                    return None;
                }
                let offset = trimmed.as_ptr() as usize - s.as_ptr() as usize;
                Some(start + offset..start + offset + trimmed.len())
            })
            .collect()
    }
}

/// A source of chunks; `consumed` is the input read so far, for progress.
pub trait Chunker {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AnalysisError>;
    fn consumed(&self) -> u64;
    /// Why a rating column found by name was dropped, if it was.
    fn rating_unusable(&self) -> Option<String> {
        None
    }
    /// The columns or keys that played each part (known once the input is read).
    fn roles(&self) -> Roles {
        Roles::default()
    }
    /// The header of a CSV input.
    fn columns(&self) -> Option<Vec<String>> {
        None
    }
}

/// Plain text, cut after the last line feed of each [`CHUNK_BYTES`] window.
pub struct TextChunker<R> {
    reader: Utf8Reader<R>,
    carry: Vec<u8>,
    done: bool,
}

impl<R: Read> TextChunker<R> {
    pub fn new(reader: R) -> Self {
        TextChunker {
            reader: Utf8Reader::new(reader),
            carry: Vec::new(),
            done: false,
        }
    }
}

impl<R: Read> Chunker for TextChunker<R> {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AnalysisError> {
        if self.done && self.carry.is_empty() {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.carry);
        let mut cut = None;
        while !self.done {
            let want = CHUNK_BYTES.max(buf.len() + CHUNK_BYTES / 4);
            let before = buf.len();
            (&mut self.reader)
                .take((want - before) as u64)
                .read_to_end(&mut buf)
                .map_err(read_error)?;
            if buf.len() == before {
                self.done = true;
                break;
            }
            if buf.len() >= CHUNK_BYTES {
                if let Some(nl) = memchr::memrchr(b'\n', &buf) {
                    cut = Some(nl + 1);
                    break;
                }
                if buf.len() >= MAX_ITEM_BYTES {
                    // No line feed in a long stretch: cut after the last whitespace, or at any
                    // character boundary, rather than hold an unbounded line.
                    // `take` may have stopped inside a character, so the fallback cut is the
                    // end of the last whole character.
                    let at = buf
                        .iter()
                        .rposition(|&b| super::pytext::is_space_byte(b))
                        .map(|p| p + 1)
                        .unwrap_or_else(|| match std::str::from_utf8(&buf) {
                            Ok(_) => buf.len(),
                            Err(e) => e.valid_up_to(),
                        });
                    cut = Some(at);
                    break;
                }
            }
        }
        if let Some(at) = cut {
            self.carry = buf.split_off(at);
        }
        if buf.is_empty() {
            return if self.done && self.carry.is_empty() {
                Ok(None)
            } else {
                self.next_chunk()
            };
        }
        let text = String::from_utf8(buf)
            .map_err(|_| AnalysisError::Internal("validated text was not UTF-8".into()))?;
        Ok(Some(Chunk::Text(text)))
    }

    fn consumed(&self) -> u64 {
        self.reader.consumed() - self.carry.len() as u64
    }
}

/// JSONL: one JSON object with a string `text` (and optional `id`) per non-blank line; the
/// line itself is kept, verbatim, for the downloads.
pub struct JsonlChunker<R> {
    reader: Utf8Reader<R>,
    line_no: u64,
    line: Vec<u8>,
    done: bool,
    text_key: String,
    id_key: String,
    id_chosen: bool,
    group_key: Option<String>,
    /// The rating key and whether the analyst chose it (see [`RatingColumn`]).
    rating_key: Option<(String, bool)>,
    rating_unusable: Option<String>,
}

impl<R: Read> JsonlChunker<R> {
    pub fn new(reader: R, fields: &Fields) -> Self {
        JsonlChunker {
            reader: Utf8Reader::new(reader),
            line_no: 0,
            line: Vec::new(),
            done: false,
            text_key: fields.text.clone().unwrap_or_else(|| "text".into()),
            id_key: fields.id.clone().unwrap_or_else(|| "id".into()),
            id_chosen: fields.id.is_some(),
            group_key: fields.group_by.clone(),
            rating_key: fields.rating.clone().map(|k| (k, true)),
            rating_unusable: None,
        }
    }

    /// The keys that play each part. A rating key found by name is only known once a line
    /// has one; the id key only counts when it was chosen.
    fn jsonl_roles(&self) -> Roles {
        Roles {
            text: Some(self.text_key.clone()),
            id: self.id_chosen.then(|| self.id_key.clone()),
            group_by: self.group_key.clone(),
            rating: self.rating_key.as_ref().map(|(k, _)| k.clone()),
        }
    }
}

/// A JSON value as a group's key: strings as they are, other scalars as JSON writes them,
/// `null` as missing.
fn group_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(other) => other.to_string(),
    }
}

/// An `id` given as a string or a number, as text.
pub fn id_text(id: Option<serde_json::Value>) -> Result<Option<String>, &'static str> {
    match id {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err("\"id\" must be a string or a number"),
    }
}

impl<R: Read> Chunker for JsonlChunker<R> {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AnalysisError> {
        let mut items = Vec::new();
        let mut bytes = 0usize;
        while !self.done && bytes < CHUNK_BYTES {
            self.line.clear();
            let n = (&mut self.reader)
                .take(MAX_ITEM_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(read_error)?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line_no += 1;
            if self.line.len() > MAX_ITEM_BYTES {
                return Err(AnalysisError::ItemTooLarge {
                    what: format!("line {}", self.line_no),
                    limit: MAX_ITEM_BYTES,
                });
            }
            bytes += n;
            let line = std::str::from_utf8(&self.line)
                .map_err(|_| AnalysisError::Internal("validated line was not UTF-8".into()))?;
            if super::pytext::strip(line).is_empty() {
                continue;
            }
            let bad = |message: String| AnalysisError::BadRecord {
                line: self.line_no,
                message,
            };
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| bad(format!("this line is not valid JSON ({e})")))?;
            let serde_json::Value::Object(mut object) = value else {
                return Err(bad(
                    "expected a JSON object such as {\"text\": \"...\"}".into()
                ));
            };
            let Some(serde_json::Value::String(text)) = object.remove(&self.text_key) else {
                return Err(bad(format!(
                    "the object needs a \"{}\" field holding a string",
                    self.text_key
                )));
            };
            let id = id_text(object.remove(&self.id_key)).map_err(|m| bad(m.into()))?;
            let group = self.group_key.as_ref().map(|k| group_text(object.get(k)));
            if self.rating_key.is_none() && self.rating_unusable.is_none() {
                self.rating_key = RATING_COLUMNS
                    .iter()
                    .find_map(|c| object.keys().find(|k| k.eq_ignore_ascii_case(c)))
                    .map(|k| (k.clone(), false));
            }
            let mut rating = None;
            if let Some((key, chosen)) = &self.rating_key {
                let value = match object.get(key) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
                    Some(serde_json::Value::String(s)) => rating_value(s, key),
                    Some(other) => rating_value(&other.to_string(), key),
                };
                match value {
                    Ok(v) => rating = v,
                    Err(message) if *chosen => return Err(bad(message)),
                    Err(message) => {
                        self.rating_unusable = Some(format!(
                            "line {}: {message} (the key was not used for agreement)",
                            self.line_no
                        ));
                        self.rating_key = None;
                    }
                }
            }
            let line = super::pytext::strip(line).to_owned();
            items.push(Record {
                id,
                text,
                source: Source::Json(line),
                group,
                rating,
            });
        }
        Ok(if items.is_empty() && self.done {
            None
        } else {
            Some(Chunk::Records(items))
        })
    }

    fn consumed(&self) -> u64 {
        self.reader.consumed()
    }

    fn rating_unusable(&self) -> Option<String> {
        self.rating_unusable.clone()
    }

    fn roles(&self) -> Roles {
        self.jsonl_roles()
    }
}

/// CSV with a header row; one item per row from the text column, keeping the row's cells.
pub struct CsvChunker<R> {
    reader: csv::Reader<Utf8Reader<R>>,
    names: Vec<String>,
    column: usize,
    id_column: Option<usize>,
    group_column: Option<usize>,
    rating: Option<RatingColumn>,
    /// Why a rating column found by name is not used (a cell that is not a number).
    rating_unusable: Option<String>,
    record: csv::StringRecord,
    done: bool,
}

/// The rating column and whether the analyst chose it (a chosen one must hold numbers; one
/// found by name is dropped, with a note, at its first cell that is not a number).
struct RatingColumn {
    index: usize,
    chosen: bool,
}

impl<R: Read> CsvChunker<R> {
    /// Read the header and pick the columns: the text column `fields.text` if given, else the
    /// first of [`TEXT_COLUMNS`] present (case-insensitive); the id column by name
    /// ([`ID_COLUMNS`]) unless chosen; the rating column by name ([`RATING_COLUMNS`]) unless
    /// chosen; the grouping column only when chosen. A chosen column that is not there is an
    /// error listing the columns.
    pub fn new(input: R, fields: &Fields) -> Result<Self, AnalysisError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(Utf8Reader::new(input));
        let headers = reader.headers().map_err(csv_error)?.clone();
        let names: Vec<String> = headers.iter().map(str::to_owned).collect();
        if names.iter().all(|n| n.trim().is_empty()) {
            return Err(AnalysisError::Empty);
        }
        let find = |wanted: &str| {
            names
                .iter()
                .position(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
        };
        let column_index = match fields.text.as_deref() {
            Some(c) => find(c),
            None => TEXT_COLUMNS.iter().find_map(|c| find(c)),
        };
        let Some(column_index) = column_index else {
            return Err(AnalysisError::NoTextColumn {
                wanted: fields.text.clone(),
                columns: names,
            });
        };
        let chosen = |role: &'static str, wanted: &Option<String>| match wanted {
            None => Ok(None),
            Some(w) => find(w)
                .map(Some)
                .ok_or_else(|| AnalysisError::UnknownColumn {
                    role,
                    wanted: w.clone(),
                    columns: names.clone(),
                }),
        };
        let id_column = match chosen("id", &fields.id)? {
            Some(i) => Some(i),
            None => find_id(&names).filter(|&i| i != column_index),
        };
        let group_column = chosen("group_by", &fields.group_by)?;
        let rating = match chosen("rating", &fields.rating)? {
            Some(index) => Some(RatingColumn {
                index,
                chosen: true,
            }),
            None => RATING_COLUMNS
                .iter()
                .find_map(|c| find(c))
                .filter(|&i| i != column_index)
                .map(|index| RatingColumn {
                    index,
                    chosen: false,
                }),
        };
        Ok(CsvChunker {
            names,
            id_column,
            group_column,
            rating,
            rating_unusable: None,
            reader,
            column: column_index,
            record: csv::StringRecord::new(),
            done: false,
        })
    }

    /// The header's names, in column order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of the column at `index`.
    fn name(&self, index: usize) -> String {
        self.names[index].trim().to_owned()
    }

    /// The text, id, group and rating columns chosen, by name.
    fn csv_roles(&self) -> Roles {
        Roles {
            text: Some(self.name(self.column)),
            id: self.id_column.map(|i| self.name(i)),
            group_by: self.group_column.map(|i| self.name(i)),
            rating: self.rating.as_ref().map(|r| self.name(r.index)),
        }
    }
}

/// The columns (or keys) that played each part in an analysis, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    pub text: Option<String>,
    pub id: Option<String>,
    pub group_by: Option<String>,
    pub rating: Option<String>,
}

fn csv_error(e: csv::Error) -> AnalysisError {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => read_error(io),
        csv::ErrorKind::Utf8 { pos, err } => AnalysisError::InvalidUtf8 {
            line: pos.as_ref().map(|p| p.line()).unwrap_or(0),
            byte_offset: pos.map(|p| p.byte()).unwrap_or(0) + err.valid_up_to() as u64,
        },
        other => AnalysisError::BadRecord {
            line: line.unwrap_or(0),
            message: format!("{other:?}"),
        },
    }
}

impl<R: Read> Chunker for CsvChunker<R> {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AnalysisError> {
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let width = self.names.len();
        while !self.done && bytes < CHUNK_BYTES {
            if !self
                .reader
                .read_record(&mut self.record)
                .map_err(csv_error)?
            {
                self.done = true;
                break;
            }
            bytes += self.record.as_slice().len() + self.record.len();
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
            if self.record.len() > width {
                return Err(AnalysisError::BadRecord {
                    line,
                    message: format!(
                        "the row has {} fields but the header names {width} columns; a field \
                         that holds a comma must be in double quotes",
                        self.record.len()
                    ),
                });
            }
            let Some(text) = self.record.get(self.column) else {
                return Err(AnalysisError::BadRecord {
                    line,
                    message: format!(
                        "the row has {} fields, the text column is field {}",
                        self.record.len(),
                        self.column + 1
                    ),
                });
            };
            if text.len() > MAX_ITEM_BYTES {
                return Err(AnalysisError::ItemTooLarge {
                    what: format!("the row on line {line}"),
                    limit: MAX_ITEM_BYTES,
                });
            }
            let cell = |c: Option<usize>| c.and_then(|c| self.record.get(c));
            let id = cell(self.id_column).map(str::to_owned);
            let group = cell(self.group_column).map(|g| g.trim().to_owned());
            let mut rating = None;
            if let Some(column) = &self.rating {
                let raw = self.record.get(column.index).unwrap_or("");
                let name = self.names[column.index].trim();
                match rating_value(raw, name) {
                    Ok(value) => rating = value,
                    Err(message) if column.chosen => {
                        return Err(AnalysisError::BadRecord { line, message });
                    }
                    Err(message) => {
                        self.rating_unusable = Some(format!(
                            "line {line}: {message} (the column was not used for agreement)"
                        ));
                        self.rating = None;
                    }
                }
            }
            let mut cells: Vec<String> = self.record.iter().map(str::to_owned).collect();
            cells.resize(width, String::new());
            items.push(Record {
                id,
                text: text.to_owned(),
                source: Source::Cells(cells),
                group,
                rating,
            });
        }
        Ok(if items.is_empty() && self.done {
            None
        } else {
            Some(Chunk::Records(items))
        })
    }

    fn consumed(&self) -> u64 {
        self.reader.position().byte()
    }

    fn rating_unusable(&self) -> Option<String> {
        self.rating_unusable.clone()
    }

    fn roles(&self) -> Roles {
        self.csv_roles()
    }

    fn columns(&self) -> Option<Vec<String>> {
        Some(self.names.clone())
    }
}

/// Feeds in-memory documents through the same pipeline in chunks.
pub struct DocumentChunker<I> {
    docs: I,
    consumed: u64,
}

impl<I> DocumentChunker<I> {
    pub fn new(docs: I) -> Self {
        DocumentChunker { docs, consumed: 0 }
    }
}

impl<I: Iterator<Item = (Option<String>, String)>> Chunker for DocumentChunker<I> {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AnalysisError> {
        let mut items = Vec::new();
        let mut bytes = 0usize;
        for (id, text) in self.docs.by_ref() {
            bytes += text.len();
            items.push(Record::plain(id, text));
            if bytes >= CHUNK_BYTES {
                break;
            }
        }
        self.consumed += bytes as u64;
        Ok((!items.is_empty()).then_some(Chunk::Records(items)))
    }

    fn consumed(&self) -> u64 {
        self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_chunks(input: &[u8]) -> Result<Vec<String>, AnalysisError> {
        let mut c = TextChunker::new(input);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk()? {
            let Chunk::Text(t) = chunk else { panic!() };
            out.push(t);
        }
        Ok(out)
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_line_and_byte_offset() {
        let err = text_chunks(b"fine\nalso fine\nbad \xff here\n").unwrap_err();
        assert!(matches!(
            err,
            AnalysisError::InvalidUtf8 {
                line: 3,
                byte_offset: 19
            }
        ));
        // A sequence cut off by the end of the input.
        let err = text_chunks(b"ok\n\xe2\x82").unwrap_err();
        assert!(matches!(
            err,
            AnalysisError::InvalidUtf8 {
                line: 2,
                byte_offset: 3
            }
        ));
    }

    #[test]
    fn the_read_buffer_stays_small_for_small_inputs_and_grows_to_its_limit_for_large_ones() {
        let mut out = Vec::new();
        let mut small = Utf8Reader::new("A short review. Quite good.".as_bytes());
        small.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"A short review. Quite good.");
        assert_eq!(small.buf.len(), FIRST_READ_BUFFER);

        // Multi-byte characters across every buffer size on the way up.
        let large = "Déjà vu, naïve café — ok. ".repeat(40_000);
        let mut big = Utf8Reader::new(large.as_bytes());
        out.clear();
        big.read_to_end(&mut out).unwrap();
        assert_eq!(out, large.as_bytes());
        assert_eq!(big.buf.len(), READ_BUFFER);
        assert_eq!(big.consumed(), large.len() as u64);
    }

    #[test]
    fn large_text_is_cut_after_line_feeds_and_nothing_is_lost() {
        let line = "Stay a while. ".repeat(40) + "\n";
        let input = line.repeat(5_000);
        let chunks = text_chunks(input.as_bytes()).unwrap();
        assert!(chunks.len() > 2);
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.ends_with('\n')));
        assert_eq!(chunks.concat(), input);
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        assert_eq!(
            text_chunks(b"\xEF\xBB\xBFhi").unwrap(),
            vec!["hi".to_owned()]
        );
    }

    #[test]
    fn sentences_are_trimmed_and_blank_ones_skipped() {
        let text = "  Good day.  Bad night!\n\n  \nWhy? ";
        let got: Vec<&str> = Chunk::text_ranges(text)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(got, ["Good day.", "Bad night!", "Why?"]);
    }
}
