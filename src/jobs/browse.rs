//! One page of a job's items for the results page's table: in input order or by score, of every
//! label or of one, [`PAGE_ITEMS`] at a time, without reading the job's text.
//!
//! A job of a million items is a few thousand chunks ([`items`]). Each chunk row carries its
//! items' scores as two-byte ticks beside its body ([`items::Chunk::ticks`]), so a job's
//! [`Index`] (each chunk's last position and item count, every item's tick: 2 MB for a million
//! items) is read without decompressing any body. A page is chosen from the index in memory:
//! one pass counts the matching items (per chunk, or per score in a histogram of the 20,001
//! possible scores), which says where the page starts; a second picks its items. Only the
//! chunks those items are in are then read and decompressed: one or two in input order, at most
//! [`PAGE_ITEMS`] in score order, each at most [`items::CHUNK_BYTES`] before compression.
//!
//! Reading the index is most of a page's cost on a large job (a query row per chunk), and a
//! succeeded job's items never change, so the last indexes read are kept ([`IndexCache`],
//! [`CACHE_BYTES`] in all): paging through a job reads its index once.
//!
//! Ties in score go in input order, so the order is total: pages never overlap or skip.

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use rustc_hash::{FxBuildHasher, FxHashMap};
use sqlx::Row;
use tokio::sync::Semaphore;

use super::items::{self, TICKS};
use super::model::ItemRow;
use crate::analysis::Label;
use crate::db::Db;
use crate::on_db;

/// Items on a page.
pub const PAGE_ITEMS: u64 = 50;

/// How many scores there are, from `-TICKS` to `TICKS`.
const SCORES: usize = 2 * TICKS as usize + 1;

/// The order of a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Input order (sentence, row, line or document).
    #[default]
    Position,
    /// Most positive first.
    ScoreDesc,
    /// Most negative first.
    ScoreAsc,
}

impl Order {
    pub const ALL: [Order; 3] = [Order::Position, Order::ScoreDesc, Order::ScoreAsc];

    /// The name in a URL (`sort=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Position => "position",
            Order::ScoreDesc => "score_desc",
            Order::ScoreAsc => "score_asc",
        }
    }

    pub fn parse(s: &str) -> Option<Order> {
        Order::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Where a score goes in this order: 0 first (only for score orders).
    fn slot(self, tick: i16) -> usize {
        match self {
            Order::ScoreAsc | Order::Position => (tick + TICKS) as usize,
            Order::ScoreDesc => (TICKS - tick) as usize,
        }
    }
}

/// Which page of which items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub order: Order,
    /// Only items of this label (None: all).
    pub label: Option<Label>,
    /// 1-based; a page past the last shows the last.
    pub page: u64,
}

impl View {
    fn needs_ticks(&self) -> bool {
        self.order != Order::Position || self.label.is_some()
    }
}

/// What a page is chosen from: a job's chunks in position order, each's last position and
/// where its items' ticks start in `ticks`.
#[derive(Debug, Default)]
pub struct Index {
    lasts: Vec<i64>,
    /// `starts[c]..starts[c + 1]` are chunk `c`'s items (one more entry than chunks).
    starts: Vec<usize>,
    ticks: Vec<i16>,
}

impl Index {
    fn new() -> Index {
        Index {
            starts: vec![0],
            ..Index::default()
        }
    }

    /// Add the next chunk (in position order).
    fn push(&mut self, last_position: i64, ticks: impl IntoIterator<Item = i16>) {
        self.lasts.push(last_position);
        self.ticks.extend(ticks);
        self.starts.push(self.ticks.len());
    }

    fn chunks(&self) -> impl Iterator<Item = (usize, i64, &[i16])> + '_ {
        self.lasts
            .iter()
            .enumerate()
            .map(|(c, &last)| (c, last, &self.ticks[self.starts[c]..self.starts[c + 1]]))
    }

    /// Bytes held, for the cache's budget.
    fn bytes(&self) -> usize {
        self.ticks.len() * 2 + self.lasts.len() * 16 + std::mem::size_of::<Index>()
    }
}

/// Bytes of indexes kept by the [`IndexCache`]: a million items' index is about 2 MB.
pub const CACHE_BYTES: usize = 32 << 20;

/// Indexes read at once when they are not cached: each holds a whole job's ticks while it is
/// read (2 bytes an item), so memory stays bounded however many pages are asked for at once.
const READS: usize = 2;

/// The indexes of the jobs paged last, least recently used out first, [`CACHE_BYTES`] in all.
/// A job's chunks do not change once it has succeeded, and a deleted job is refused before its
/// table is read, so an entry never needs invalidating; it only ages out.
pub struct IndexCache {
    entries: Mutex<Entries>,
    reads: Semaphore,
}

/// The cache's entries: each job's index and when it was last used (by a counter of uses).
struct Entries {
    clock: u64,
    bytes: usize,
    map: FxHashMap<String, (Arc<Index>, u64)>,
}

impl IndexCache {
    const fn new() -> IndexCache {
        IndexCache {
            entries: Mutex::new(Entries {
                clock: 0,
                bytes: 0,
                map: FxHashMap::with_hasher(FxBuildHasher),
            }),
            reads: Semaphore::const_new(READS),
        }
    }

    fn get(&self, job_id: &str) -> Option<Arc<Index>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.clock += 1;
        let now = entries.clock;
        entries.map.get_mut(job_id).map(|(index, used)| {
            *used = now;
            index.clone()
        })
    }

    fn put(&self, job_id: &str, index: Arc<Index>) {
        let size = index.bytes();
        if size > CACHE_BYTES / 2 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entries = &mut *entries;
        entries.clock += 1;
        if let Some((old, _)) = entries
            .map
            .insert(job_id.to_owned(), (index, entries.clock))
        {
            entries.bytes -= old.bytes();
        }
        entries.bytes += size;
        while entries.bytes > CACHE_BYTES {
            let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((gone, _)) = entries.map.remove(&oldest) {
                entries.bytes -= gone.bytes();
            }
        }
    }

    /// The index of job `job_id`, read from the database unless it is kept.
    async fn index(&self, db: &Db, job_id: &str) -> Result<Arc<Index>, sqlx::Error> {
        if let Some(index) = self.get(job_id) {
            return Ok(index);
        }
        let _read = self.reads.acquire().await.expect("never closed");
        if let Some(index) = self.get(job_id) {
            return Ok(index);
        }
        let index = Arc::new(read_index(db, job_id).await?);
        self.put(job_id, index.clone());
        Ok(index)
    }
}

/// The web process's cache of indexes.
pub static CACHE: IndexCache = IndexCache::new();

/// A page of items.
#[derive(Debug)]
pub struct Page {
    /// In the view's order.
    pub items: Vec<ItemRow>,
    /// Items of the view's label (all items when none).
    pub matching: u64,
    /// The page shown (1-based; 1 when there are no items).
    pub page: u64,
    /// Pages in all (at least 1).
    pub pages: u64,
}

/// Which scores (by tick) pass the view's label filter: the same [`Label::of`] as everywhere.
fn accepted(label: Option<Label>) -> Vec<bool> {
    (-TICKS..=TICKS)
        .map(|t| label.is_none_or(|l| Label::of(f64::from(t) / f64::from(TICKS)) == l))
        .collect()
}

/// How many items match, per chunk (input order) and per score slot.
struct Counts {
    per_chunk: Vec<u64>,
    per_slot: Vec<u64>,
    matching: u64,
}

impl Counts {
    fn of(index: &Index, view: &View, accept: &[bool]) -> Counts {
        let mut counts = Counts {
            per_chunk: Vec::with_capacity(index.lasts.len()),
            per_slot: vec![0; SCORES],
            matching: 0,
        };
        for (_, _, ticks) in index.chunks() {
            let n = if view.needs_ticks() {
                let mut n = 0;
                for &t in ticks {
                    if accept[(t + TICKS) as usize] {
                        n += 1;
                        counts.per_slot[view.order.slot(t)] += 1;
                    }
                }
                n
            } else {
                ticks.len() as u64
            };
            counts.per_chunk.push(n);
            counts.matching += n;
        }
        counts
    }
}

/// The ranks (0-based, in the view's order) a page covers, and the page number it is.
fn window(view: &View, matching: u64) -> (u64, u64, u64, u64) {
    let pages = matching.div_ceil(PAGE_ITEMS).max(1);
    let page = view.page.clamp(1, pages);
    let start = (page - 1) * PAGE_ITEMS;
    let end = (start + PAGE_ITEMS).min(matching);
    (start, end, page, pages)
}

/// The items of a page, as (the chunk's last position, index in the chunk), in the view's
/// order; how many items match; the page shown and the number of pages.
struct Selection {
    picks: Vec<(i64, usize)>,
    matching: u64,
    page: u64,
    pages: u64,
}

fn select(index: &Index, view: &View) -> Selection {
    let accept = accepted(view.label);
    let counts = Counts::of(index, view, &accept);
    let (start, end, page, pages) = window(view, counts.matching);
    let mut picks: Vec<(usize, i64, usize)> = Vec::new();
    if start < end && view.order == Order::Position {
        // Skip whole chunks by their counts, then walk from the page's first one.
        let mut rank = 0;
        for ((_, last, ticks), &n) in index.chunks().zip(&counts.per_chunk) {
            if rank + n <= start {
                rank += n;
                continue;
            }
            for (i, &t) in ticks.iter().enumerate() {
                if !accept[(t + TICKS) as usize] {
                    continue;
                }
                if rank >= start {
                    picks.push((0, last, i));
                }
                rank += 1;
                if rank >= end {
                    break;
                }
            }
            if rank >= end {
                break;
            }
        }
    } else if start < end {
        // Which of each score's items (in order of appearance) are on the page.
        let mut take = vec![(0, 0); SCORES];
        let (mut first, mut last_slot, mut rank) = (usize::MAX, 0, 0);
        for (slot, &n) in counts.per_slot.iter().enumerate() {
            let (lo, hi) = (rank, rank + n);
            if hi > start && lo < end {
                take[slot] = (start.max(lo) - lo, end.min(hi) - lo);
                first = first.min(slot);
                last_slot = slot;
            }
            rank = hi;
            if rank >= end {
                break;
            }
        }
        let mut seen = vec![0u64; SCORES];
        for (_, last, ticks) in index.chunks() {
            for (i, &t) in ticks.iter().enumerate() {
                let slot = view.order.slot(t);
                if slot < first || slot > last_slot || !accept[(t + TICKS) as usize] {
                    continue;
                }
                let nth = seen[slot];
                seen[slot] += 1;
                let (lo, hi) = take[slot];
                if nth >= lo && nth < hi {
                    picks.push((slot, last, i));
                }
            }
        }
        picks.sort_unstable();
    }
    Selection {
        picks: picks.into_iter().map(|(_, last, i)| (last, i)).collect(),
        matching: counts.matching,
        page,
        pages,
    }
}

/// Job `job_id`'s index, one query row per chunk. A chunk written before ticks were stored
/// gives its body instead, and its ticks are worked out from it.
async fn read_index(db: &Db, job_id: &str) -> Result<Index, sqlx::Error> {
    const SQL: &str = "SELECT last_position, ticks, \
         CASE WHEN ticks IS NULL THEN body END AS legacy FROM job_item_chunks \
         WHERE job_id = $1 ORDER BY last_position";
    let mut index = Index::new();
    on_db!(db, |pool| {
        let mut rows = sqlx::query(SQL).bind(job_id).fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let last: i64 = row.try_get(0)?;
            match row.try_get::<Option<Vec<u8>>, _>(1)? {
                Some(ticks) => index.push(last, items::read_ticks(&ticks)),
                None => {
                    let body: Vec<u8> = row.try_get(2)?;
                    let ticks = items::ticks_of(&items::decode(&body)?);
                    index.push(last, items::read_ticks(&ticks));
                }
            }
        }
    });
    Ok(index)
}

/// Page `view.page` of job `job_id`'s items in `view`'s order and of its label.
pub async fn page(db: &Db, job_id: &str, view: View) -> Result<Page, sqlx::Error> {
    let index = CACHE.index(db, job_id).await?;
    let selection = select(&index, &view);
    drop(index);
    Ok(Page {
        items: read_picks(db, job_id, &selection.picks).await?,
        matching: selection.matching,
        page: selection.page,
        pages: selection.pages,
    })
}

/// The picked items, decoding each chunk they are in once.
async fn read_picks(
    db: &Db,
    job_id: &str,
    picks: &[(i64, usize)],
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let mut wanted: Vec<i64> = picks.iter().map(|&(last, _)| last).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let bodies: Vec<(i64, Vec<u8>)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT last_position, body FROM job_item_chunks \
                 WHERE job_id = $1 AND last_position = ANY($2)",
            )
            .bind(job_id)
            .bind(&wanted)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            let mut bodies = Vec::with_capacity(wanted.len());
            for &last in &wanted {
                let body: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT body FROM job_item_chunks WHERE job_id = $1 AND last_position = $2",
                )
                .bind(job_id)
                .bind(last)
                .fetch_optional(pool)
                .await?;
                bodies.extend(body.map(|b| (last, b)));
            }
            bodies
        }
    };
    let mut decoded: std::collections::HashMap<i64, Vec<Option<ItemRow>>> =
        std::collections::HashMap::with_capacity(bodies.len());
    for (last, body) in bodies {
        let items = items::decode(&body)?;
        decoded.insert(last, items.into_iter().map(Some).collect());
    }
    // A chunk gone between the passes (the job was deleted meanwhile) leaves its items out.
    Ok(picks
        .iter()
        .filter_map(|&(last, i)| {
            decoded
                .get_mut(&last)
                .and_then(|items| items.get_mut(i))
                .and_then(Option::take)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::input::Source;
    use proptest::prelude::*;

    fn item(position: i64, compound: f64) -> ItemRow {
        ItemRow {
            position,
            item_id: None,
            text: format!("item {position}"),
            neg: 0.0,
            neu: 1.0,
            pos: 0.0,
            compound,
            source: Source::None,
            lang: None,
        }
    }

    /// The page as the passes compute it over chunks held in memory: (position) of each pick.
    fn pick_positions(chunks: &[Vec<ItemRow>], view: View) -> (Vec<i64>, u64, u64, u64) {
        // A chunk's key is its index here (stored chunks go by their last position).
        let mut index = Index::new();
        for (c, chunk) in chunks.iter().enumerate() {
            index.push(c as i64, chunk.iter().map(|i| items::tick(i.compound)));
        }
        let s = select(&index, &view);
        let positions = s.picks.iter().map(|&(c, i)| chunks[c as usize][i].position);
        (positions.collect(), s.matching, s.page, s.pages)
    }

    #[test]
    fn the_cache_keeps_the_last_used_indexes_within_its_bytes() {
        let cache = IndexCache::new();
        let big = |n: usize| {
            let mut index = Index::new();
            index.push(0, std::iter::repeat_n(0, n));
            Arc::new(index)
        };
        // Each about a quarter of the budget: the fifth pushes out the least recently used.
        let quarter = CACHE_BYTES / 8 - 100;
        for job in ["a", "b", "c", "d"] {
            cache.put(job, big(quarter));
        }
        assert!(cache.get("a").is_some());
        cache.put("e", big(quarter));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        for job in ["a", "c", "d", "e"] {
            assert!(cache.get(job).is_some(), "{job}");
        }
        let held = cache.entries.lock().unwrap().bytes;
        assert!(held <= CACHE_BYTES, "{held}");
        // One index over half the budget is not kept at all.
        cache.put("huge", big(CACHE_BYTES / 3));
        assert!(cache.get("huge").is_none());
        assert!(cache.get("a").is_some());
    }

    /// The same page by sorting everything: what the passes must agree with.
    fn expected(all: &[ItemRow], view: View) -> Vec<i64> {
        let mut matching: Vec<&ItemRow> = all
            .iter()
            .filter(|i| view.label.is_none_or(|l| Label::of(i.compound) == l))
            .collect();
        match view.order {
            Order::Position => {}
            Order::ScoreDesc => matching.sort_by(|a, b| {
                b.compound
                    .total_cmp(&a.compound)
                    .then(a.position.cmp(&b.position))
            }),
            Order::ScoreAsc => matching.sort_by(|a, b| {
                a.compound
                    .total_cmp(&b.compound)
                    .then(a.position.cmp(&b.position))
            }),
        }
        let pages = (matching.len() as u64).div_ceil(PAGE_ITEMS).max(1);
        let page = view.page.clamp(1, pages);
        matching
            .iter()
            .skip(((page - 1) * PAGE_ITEMS) as usize)
            .take(PAGE_ITEMS as usize)
            .map(|i| i.position)
            .collect()
    }

    fn views() -> Vec<(Order, Option<Label>)> {
        let labels = [
            None,
            Some(Label::Positive),
            Some(Label::Neutral),
            Some(Label::Negative),
        ];
        Order::ALL
            .into_iter()
            .flat_map(|o| labels.into_iter().map(move |l| (o, l)))
            .collect()
    }

    #[test]
    fn every_page_of_every_view_is_what_sorting_everything_gives() {
        // 1,234 items in chunks of uneven sizes; many ties (compound 0 and a few repeated
        // values) so pages cut through runs of equal scores.
        let all: Vec<ItemRow> = (0..1234)
            .map(|p| {
                let c = match p % 7 {
                    0 | 3 => 0.0,
                    1 => 0.4404,
                    _ => ((p * 37 % 2001) as f64 - 1000.0) / 1000.0,
                };
                item(p * 3 + 1, c)
            })
            .collect();
        let mut chunks = Vec::new();
        let mut rest = &all[..];
        for size in [1usize, 120, 49, 300, 2, 500].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(head.to_vec());
            rest = tail;
        }
        for (order, label) in views() {
            let mut seen = Vec::new();
            let mut page = 1;
            loop {
                let view = View { order, label, page };
                let (got, matching, shown, pages) = pick_positions(&chunks, view);
                assert_eq!(got, expected(&all, view), "{order:?} {label:?} page {page}");
                assert_eq!(shown, page.min(pages));
                seen.extend(got);
                if page >= pages {
                    assert_eq!(seen.len() as u64, matching, "{order:?} {label:?}");
                    break;
                }
                page += 1;
            }
            // Every matching item once: no page overlaps or skips.
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len() as u64,
                pick_positions(
                    &chunks,
                    View {
                        order,
                        label,
                        page: 1
                    }
                )
                .1
            );
        }
    }

    #[test]
    fn a_page_past_the_last_shows_the_last_and_no_items_show_page_one_of_one() {
        let chunks = vec![(0..120).map(|p| item(p, 0.5)).collect::<Vec<_>>()];
        let view = View {
            order: Order::ScoreDesc,
            label: None,
            page: 99,
        };
        let (got, matching, page, pages) = pick_positions(&chunks, view);
        assert_eq!((matching, page, pages), (120, 3, 3));
        assert_eq!(got, (100..120).collect::<Vec<_>>());
        let view = View {
            order: Order::Position,
            label: Some(Label::Negative),
            page: 0,
        };
        let (got, matching, page, pages) = pick_positions(&chunks, view);
        assert_eq!((got.len(), matching, page, pages), (0, 0, 1, 1));
    }

    proptest! {
        #[test]
        fn any_scores_and_chunking_page_like_a_full_sort(
            scores in proptest::collection::vec(-10_000i16..=10_000, 0..400),
            cut in 1usize..90,
            page in 0u64..12,
            which in 0usize..12,
        ) {
            let all: Vec<ItemRow> = scores
                .iter()
                .enumerate()
                .map(|(p, &t)| item(p as i64, f64::from(t / 997) / 10.0))
                .collect();
            let chunks: Vec<Vec<ItemRow>> = all.chunks(cut).map(<[ItemRow]>::to_vec).collect();
            let (order, label) = views()[which];
            let view = View { order, label, page };
            prop_assert_eq!(pick_positions(&chunks, view).0, expected(&all, view));
        }
    }
}
