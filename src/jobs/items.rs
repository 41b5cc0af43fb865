//! How a job's scored items are stored: in chunks of consecutive items, each one row of
//! `job_item_chunks` holding the items encoded compactly and compressed with LZ4.
//!
//! A row per item (its text, four doubles and the job id, plus the key) made a job's items about
//! three times the size of its input. A chunk keeps each item's text once, the scores as the
//! small integers they are, and positions as deltas; LZ4 then shrinks the text (English prose
//! to about half) at a cost of a few milliseconds per megabyte either way.
//!
//! The scores are VADER's, rounded by [`crate::analysis::pytext::round`] to 3 (neg, neu, pos) or
//! 4 (compound) decimals: an integer divided by 10³ or 10⁴. Each score is stored as that integer
//! only when dividing it again gives back the very same `f64` (every bit, the sign of zero
//! included); any other value is stored as its 8 bytes. So a download renders exactly the
//! numbers that were scored, whatever they are, and byte for byte as when every item had a row.
//!
//! Layout of a chunk body: one format byte ([`RAW`] or [`LZ4`] for chunks written before rows
//! were kept, [`RAW_ROWS`] or [`LZ4_ROWS`] since; a body LZ4 cannot shrink is kept raw), then the
//! payload, LZ4-compressed with its length in front for the LZ4 forms. The payload is, per item:
//! the position's difference from the previous one (zigzag varint, the first from 0), a byte of
//! four 2-bit score kinds, the id (varint 0 for none, else its length + 1, then its bytes), the
//! text (varint length, bytes), then each score by its kind. The `_ROWS` forms add, per item,
//! its source (a tag byte: none; CSV cells as a count and each cell's length and bytes; a JSONL
//! line's length and bytes; a sentence's start and length in code points) and its language
//! (length and bytes, 0 for none). A CSV row repeats its text cell, which LZ4 turns into a
//! back-reference of a few bytes.

use super::model::ItemRow;
use crate::analysis::input::Source;

/// Most items in one chunk (a download holds one chunk at a time, decoded).
pub const CHUNK_ITEMS: usize = 5000;
/// A chunk is closed once its payload passes this many bytes. Small enough that a page of the
/// items in score order, whose 50 items can come from 50 chunks, reads a few megabytes at most
/// ([`crate::jobs::browse`]); as large as LZ4's 64 KiB window, so compression loses nothing.
pub const CHUNK_BYTES: usize = 64 << 10;

/// The compound score's resolution: VADER rounds it to 4 decimals, so `compound * TICKS` is an
/// integer in `-TICKS..=TICKS`.
pub const TICKS: i16 = 10_000;

/// Format byte: the payload follows as is.
const RAW: u8 = 0;
/// Format byte: the payload follows LZ4-compressed, its length in front (`lz4_flex`'s block
/// format with the size prepended).
const LZ4: u8 = 1;
/// Format bytes of chunks whose items carry their source row and language.
const RAW_ROWS: u8 = 2;
const LZ4_ROWS: u8 = 3;

/// Source tags.
const SOURCE_NONE: u8 = 0;
const SOURCE_CELLS: u8 = 1;
const SOURCE_JSON: u8 = 2;
const SOURCE_SPAN: u8 = 3;

/// Score kinds, two bits each.
const THOUSANDTHS: u8 = 0;
const TEN_THOUSANDTHS: u8 = 1;
const BITS: u8 = 2;
const NEGATIVE_ZERO: u8 = 3;

/// One stored chunk: consecutive items of a job and their encoded body.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub first_position: i64,
    pub last_position: i64,
    pub items: i64,
    pub body: Vec<u8>,
    /// Each item's compound score in ticks ([`tick`]), two bytes little-endian each, in
    /// position order: what a page in score order or of one label reads for every chunk of a
    /// job without decompressing any body.
    pub ticks: Vec<u8>,
}

/// A compound score in ticks (ten-thousandths), rounded and clamped for a value VADER would
/// not give; only the order of pages uses it, never a shown or downloaded score.
pub fn tick(compound: f64) -> i16 {
    let t = (compound * f64::from(TICKS)).round();
    if t.is_nan() {
        0
    } else {
        t.clamp(-f64::from(TICKS), f64::from(TICKS)) as i16
    }
}

/// The ticks of `items`, as stored in [`Chunk::ticks`].
pub fn ticks_of(items: &[ItemRow]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|item| tick(item.compound).to_le_bytes())
        .collect()
}

/// The ticks of a chunk, read back from [`Chunk::ticks`].
pub fn read_ticks(bytes: &[u8]) -> impl Iterator<Item = i16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
}

/// A stored chunk that cannot be read back (a bug, or a row written by hand).
#[derive(Debug, thiserror::Error)]
#[error("a stored chunk of items is unreadable: {0}")]
pub struct DecodeError(&'static str);

impl From<DecodeError> for sqlx::Error {
    fn from(e: DecodeError) -> Self {
        sqlx::Error::Decode(Box::new(e))
    }
}

/// Encode `items` (in position order) into chunks of at most [`CHUNK_ITEMS`] items and about
/// [`CHUNK_BYTES`] bytes each.
pub fn encode(items: &[ItemRow]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut payload = Vec::new();
        let mut end = start;
        let mut previous = 0;
        while end < items.len() && end - start < CHUNK_ITEMS && payload.len() < CHUNK_BYTES {
            encode_item(&mut payload, &items[end], previous);
            previous = items[end].position;
            end += 1;
        }
        chunks.push(Chunk {
            first_position: items[start].position,
            last_position: items[end - 1].position,
            items: (end - start) as i64,
            body: seal(payload),
            ticks: ticks_of(&items[start..end]),
        });
        start = end;
    }
    chunks
}

/// The body of a payload: compressed when that makes it smaller.
fn seal(payload: Vec<u8>) -> Vec<u8> {
    let compressed = lz4_flex::block::compress_prepend_size(&payload);
    let (format, bytes) = if compressed.len() < payload.len() {
        (LZ4_ROWS, compressed)
    } else {
        (RAW_ROWS, payload)
    };
    let mut body = Vec::with_capacity(bytes.len() + 1);
    body.push(format);
    body.extend_from_slice(&bytes);
    body
}

/// The items of a chunk body, in position order.
pub fn decode(body: &[u8]) -> Result<Vec<ItemRow>, DecodeError> {
    let (&format, rest) = body.split_first().ok_or(DecodeError("empty body"))?;
    let payload;
    let mut input = match format {
        RAW | RAW_ROWS => rest,
        LZ4 | LZ4_ROWS => {
            payload = lz4_flex::block::decompress_size_prepended(rest)
                .map_err(|_| DecodeError("bad LZ4 block"))?;
            &payload[..]
        }
        _ => return Err(DecodeError("unknown format")),
    };
    let rows = matches!(format, RAW_ROWS | LZ4_ROWS);
    let mut items = Vec::new();
    let mut previous = 0;
    while !input.is_empty() {
        let item = decode_item(&mut input, previous, rows)?;
        previous = item.position;
        items.push(item);
    }
    Ok(items)
}

fn encode_item(out: &mut Vec<u8>, item: &ItemRow, previous: i64) {
    put_varint(out, zigzag(item.position.wrapping_sub(previous)));
    let scores = [item.neg, item.neu, item.pos, item.compound];
    let kinds = scores.map(score_kind);
    out.push(
        kinds
            .iter()
            .enumerate()
            .fold(0, |byte, (i, (kind, _))| byte | (kind << (2 * i))),
    );
    match &item.item_id {
        None => put_varint(out, 0),
        Some(id) => {
            put_varint(out, id.len() as u64 + 1);
            out.extend_from_slice(id.as_bytes());
        }
    }
    put_varint(out, item.text.len() as u64);
    out.extend_from_slice(item.text.as_bytes());
    for (kind, value) in kinds {
        match kind {
            BITS => out.extend_from_slice(&value.to_le_bytes()),
            NEGATIVE_ZERO => {}
            _ => put_varint(out, value),
        }
    }
    match &item.source {
        Source::None => out.push(SOURCE_NONE),
        Source::Cells(cells) => {
            out.push(SOURCE_CELLS);
            put_varint(out, cells.len() as u64);
            for cell in cells {
                put_bytes(out, cell.as_bytes());
            }
        }
        Source::Json(line) => {
            out.push(SOURCE_JSON);
            put_bytes(out, line.as_bytes());
        }
        Source::Span { start, end } => {
            out.push(SOURCE_SPAN);
            put_varint(out, *start);
            put_varint(out, end - start);
        }
    }
    put_bytes(out, item.lang.unwrap_or("").as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn get_text(input: &mut &[u8]) -> Result<String, DecodeError> {
    let len = get_varint(input)? as usize;
    text(take(input, len)?)
}

fn decode_item(input: &mut &[u8], previous: i64, rows: bool) -> Result<ItemRow, DecodeError> {
    let position = previous.wrapping_add(unzigzag(get_varint(input)?));
    let kinds = take(input, 1)?[0];
    let item_id = match get_varint(input)? {
        0 => None,
        n => Some(text(take(input, (n - 1) as usize)?)?),
    };
    let len = get_varint(input)? as usize;
    let text = text(take(input, len)?)?;
    let mut scores = [0.0; 4];
    for (i, score) in scores.iter_mut().enumerate() {
        *score = match (kinds >> (2 * i)) & 3 {
            THOUSANDTHS => unzigzag(get_varint(input)?) as f64 / 1e3,
            TEN_THOUSANDTHS => unzigzag(get_varint(input)?) as f64 / 1e4,
            BITS => {
                let bytes: [u8; 8] = take(input, 8)?.try_into().expect("8 bytes");
                f64::from_bits(u64::from_le_bytes(bytes))
            }
            _ => -0.0,
        };
    }
    let [neg, neu, pos, compound] = scores;
    let (source, lang) = if rows {
        let source = match take(input, 1)?[0] {
            SOURCE_NONE => Source::None,
            SOURCE_CELLS => {
                let n = get_varint(input)? as usize;
                // Each cell takes at least a byte, so a damaged count cannot reserve much.
                let mut cells = Vec::with_capacity(n.min(input.len()));
                for _ in 0..n {
                    cells.push(get_text(input)?);
                }
                Source::Cells(cells)
            }
            SOURCE_JSON => Source::Json(get_text(input)?),
            SOURCE_SPAN => {
                let start = get_varint(input)?;
                let end = start
                    .checked_add(get_varint(input)?)
                    .ok_or(DecodeError("span out of range"))?;
                Source::Span { start, end }
            }
            _ => return Err(DecodeError("unknown source")),
        };
        let len = get_varint(input)? as usize;
        let lang =
            std::str::from_utf8(take(input, len)?).map_err(|_| DecodeError("bad language"))?;
        (source, crate::analysis::lang::known(lang))
    } else {
        (Source::None, None)
    };
    Ok(ItemRow {
        position,
        item_id,
        text,
        neg,
        neu,
        pos,
        compound,
        source,
        lang,
    })
}

/// How a score is stored, and the number that stands for it: the smallest scale that gives the
/// value back bit for bit, else its bits.
fn score_kind(value: f64) -> (u8, u64) {
    if value.to_bits() == (-0.0f64).to_bits() {
        return (NEGATIVE_ZERO, 0);
    }
    for (kind, scale) in [(THOUSANDTHS, 1e3), (TEN_THOUSANDTHS, 1e4)] {
        let n = (value * scale).round();
        // Within ±2^53 an integer-valued f64 converts to i64 exactly.
        if n.abs() < 9.0e15 && ((n as i64) as f64 / scale).to_bits() == value.to_bits() {
            return (kind, zigzag(n as i64));
        }
    }
    (BITS, value.to_bits())
}

fn text(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("text is not UTF-8"))
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError("truncated"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(input, 1)?[0];
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(DecodeError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(position: i64, text: &str, scores: [f64; 4]) -> ItemRow {
        ItemRow {
            position,
            item_id: (position % 3 == 0).then(|| format!("id-{position}")),
            text: text.to_owned(),
            neg: scores[0],
            neu: scores[1],
            pos: scores[2],
            compound: scores[3],
            source: match position % 4 {
                0 => Source::None,
                1 => Source::Cells(vec![format!("{position}"), text.to_owned(), String::new()]),
                2 => Source::Json(format!("{{\"text\": {text:?}}}")),
                _ => Source::Span {
                    start: position as u64 * 10,
                    end: position as u64 * 10 + 7,
                },
            },
            lang: (position % 2 == 0).then_some("en"),
        }
    }

    type Bits = (
        i64,
        Option<String>,
        String,
        [u64; 4],
        Source,
        Option<&'static str>,
    );

    fn bits(items: &[ItemRow]) -> Vec<Bits> {
        items
            .iter()
            .map(|i| {
                let scores = [i.neg, i.neu, i.pos, i.compound].map(f64::to_bits);
                let (source, lang) = (i.source.clone(), i.lang);
                (
                    i.position,
                    i.item_id.clone(),
                    i.text.clone(),
                    scores,
                    source,
                    lang,
                )
            })
            .collect()
    }

    #[test]
    fn vader_scores_are_stored_as_small_integers_and_read_back_bit_for_bit() {
        let items: Vec<ItemRow> = (0..2000)
            .map(|i| {
                let n = f64::from(i);
                let scores = [
                    crate::analysis::pytext::round(n / 2000.0, 3),
                    crate::analysis::pytext::round(1.0 - n / 2000.0, 3),
                    0.0,
                    crate::analysis::pytext::round(n / 1000.0 - 1.0, 4),
                ];
                item(i64::from(i), "A sentence that repeats itself.", scores)
            })
            .collect();
        let chunks = encode(&items);
        let decoded: Vec<ItemRow> = chunks
            .iter()
            .flat_map(|c| decode(&c.body).unwrap())
            .collect();
        assert_eq!(bits(&decoded), bits(&items));
        // Text, scores and positions in well under the text's own size plus four doubles.
        let stored: usize = chunks.iter().map(|c| c.body.len()).sum();
        assert!(stored < items.len() * 16, "{stored} bytes");
    }

    #[test]
    fn chunks_split_by_count_and_size_and_keep_their_positions() {
        let long = "x".repeat(300_000);
        // Items small enough that the count closes the first chunk, not its size.
        let mut items: Vec<ItemRow> = (0..(CHUNK_ITEMS as i64 + 10))
            .map(|p| ItemRow {
                item_id: None,
                source: Source::None,
                ..item(p * 2 + 5, "", [0.0, 1.0, 0.0, 0.0])
            })
            .collect();
        items.extend((0..8).map(|p| item(100_000 + p, &long, [0.1, 0.9, 0.0, -0.0])));
        let chunks = encode(&items);
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        assert_eq!(chunks[0].items, CHUNK_ITEMS as i64);
        assert_eq!(chunks[0].first_position, 5);
        let mut all = Vec::new();
        for c in &chunks {
            let decoded = decode(&c.body).unwrap();
            assert_eq!(decoded.len() as i64, c.items);
            assert_eq!(decoded[0].position, c.first_position);
            assert_eq!(decoded.last().unwrap().position, c.last_position);
            assert_eq!(c.ticks, ticks_of(&decoded));
            all.extend(decoded);
        }
        assert_eq!(bits(&all), bits(&items));
    }

    #[test]
    fn chunks_written_before_rows_were_kept_still_read() {
        // The old layout by hand: position 3, kinds (neg, neu, pos in thousandths, compound in
        // ten-thousandths), no id, text "ok", then 0, 1000, 0 and 4404 (zigzag varints).
        let mut payload = vec![6, 0b0100_0000, 0, 2, b'o', b'k', 0];
        put_varint(&mut payload, zigzag(1000));
        payload.push(0);
        put_varint(&mut payload, zigzag(4404));
        let mut body = vec![RAW];
        body.extend_from_slice(&payload);
        let items = decode(&body).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].position, items[0].text.as_str(), items[0].neu),
            (3, "ok", 1.0)
        );
        assert_eq!(items[0].compound, 0.4404);
        assert_eq!(items[0].source, Source::None);
        assert_eq!(items[0].lang, None);
    }

    #[test]
    fn ticks_are_the_compound_in_ten_thousandths_and_read_back() {
        let items: Vec<ItemRow> = [0.4404, -0.05, 0.05, -1.0, 1.0, -0.0, 0.00004, f64::NAN, 7.0]
            .iter()
            .enumerate()
            .map(|(p, &c)| item(p as i64, "t", [0.0, 1.0, 0.0, c]))
            .collect();
        let ticks: Vec<i16> = read_ticks(&ticks_of(&items)).collect();
        assert_eq!(ticks, [4404, -500, 500, -10_000, 10_000, 0, 0, 0, 10_000]);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        let body = encode(&[item(0, "fine", [0.0; 4])]).remove(0).body;
        for cut in 0..body.len() {
            let _ = decode(&body[..cut]);
        }
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn any_items_read_back_exactly(
            rows in proptest::collection::vec(
                (0i64..1_000_000, proptest::option::of("[a-z0-9]{0,8}"), "\\PC{0,40}",
                 proptest::array::uniform4(any::<u64>().prop_map(f64::from_bits))),
                1..50,
            )
        ) {
            let mut position = 0;
            let items: Vec<ItemRow> = rows
                .into_iter()
                .map(|(step, id, text, scores)| {
                    position += step;
                    ItemRow {
                        position,
                        item_id: id,
                        text,
                        neg: scores[0],
                        neu: scores[1],
                        pos: scores[2],
                        compound: scores[3],
                        source: Source::Cells(vec![String::from("a,b"), String::new()]),
                        lang: None,
                    }
                })
                .collect();
            let decoded: Vec<ItemRow> = encode(&items)
                .iter()
                .flat_map(|c| decode(&c.body).unwrap())
                .collect();
            prop_assert_eq!(bits(&decoded), bits(&items));
        }
    }
}
