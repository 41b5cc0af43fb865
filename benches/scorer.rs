//! Criterion micro-benchmarks of the VADER scorer and the document pipeline.
//!
//! - `polarity_scores/*`: one call on texts of different shapes (throughput: texts per second).
//! - `analyze/text_2mib`: the whole pipeline (sentence splitting, scoring on all cores, report)
//!   on a ~2 MiB in-memory text document (throughput: bytes per second). Two of its parts on one
//!   thread, same document: `analyze/split_sentences_2mib` (the Unicode sentence split alone) and
//!   `analyze/score_sentences_2mib` (one [`Scorer`] scoring every sentence, no split, no report).
//! - `analyze/small_job`: the whole pipeline on the two-sentence input of `scripts/bench-rate.sh`,
//!   the cost a worker pays per small job besides its queue and database work.
//!
//! Run: `cargo bench --bench scorer` (add `-- --quick` for a fast pass, or a filter such as
//! `-- polarity_scores/tweet`). Inputs are built here, deterministically, so the numbers do not
//! depend on files outside this crate.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sentiq::analysis::input::Chunk;
use sentiq::analysis::{Format, Options, Scorer, analyze, polarity_scores};

/// (a) A short neutral sentence: no lexicon hit.
const SHORT_NEUTRAL: &str = "The meeting is scheduled for Tuesday at the main office.";

/// (b) A typical tweet: mention, hashtag, emoticon, repeated punctuation, a word in caps.
const TWEET_EMOTICON: &str = "@sam just got my new phone :) the camera is AMAZING, best upgrade \
                              ever!! #happy #weekend";

/// (c) Negation, boosters and a contrastive "but".
const NEGATION_BOOSTER_BUT: &str = "The food was not very good and the wait was extremely long, \
                                    but the staff were incredibly kind and I didn't hate it.";

/// (d) Emoji and accented letters: the non-ASCII path (emoji replaced by their descriptions).
const EMOJI_NON_ASCII: &str = "Café con amigos 😍🔥 las crêpes étaient délicieuses 🥰 but the \
                               bill 😒💸 was a bit much… still 10/10 🙏✨";

/// Sentences that make up the paragraph and the document, in a fixed order: positive, negative
/// and neutral, with the constructs the scorer handles specially.
const POOL: &[&str] = &[
    "I love how easy this was to set up.",
    "The battery died after two days, which is really disappointing.",
    "Shipping took a week.",
    "It is not bad at all, honestly.",
    "The screen is VERY bright and the colours are gorgeous!",
    "Customer service never answered my emails.",
    "Kind of meh, but it does the job.",
    "Absolutely the worst purchase I have made this year :(",
    "Works as described.",
    "Great value for the money, would buy again :)",
    "The instructions were confusing and half the screws were missing.",
    "Not the best, not the worst.",
    "My kids are thrilled with it 😍 and so am I.",
    "The hinge broke the first week, so I sent it back.",
    "Pretty good sound for such a small speaker!",
    "I can't say I'm impressed.",
    "The app crashes sometimes, but updates have helped a lot.",
    "Honestly? It's fine.",
];

/// A paragraph of exactly `words` words, cycling through [`POOL`].
fn paragraph(words: usize) -> String {
    let text = POOL
        .iter()
        .cycle()
        .flat_map(|s| s.split_whitespace())
        .take(words)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(text.split_whitespace().count(), words);
    text
}

/// A plain-text document of at least `bytes` bytes: paragraphs of 3 to 8 sentences from
/// [`POOL`], separated by blank lines.
fn document(bytes: usize) -> String {
    let mut doc = String::with_capacity(bytes + 1024);
    let mut sentences = POOL.iter().cycle();
    let mut paragraph_len = 3;
    while doc.len() < bytes {
        for i in 0..paragraph_len {
            if i > 0 {
                doc.push(' ');
            }
            doc.push_str(sentences.next().expect("cycle never ends"));
        }
        doc.push_str("\n\n");
        paragraph_len = if paragraph_len == 8 {
            3
        } else {
            paragraph_len + 1
        };
    }
    doc
}

fn bench_polarity_scores(c: &mut Criterion) {
    let long = paragraph(2_000);
    let cases: [(&str, &str); 5] = [
        ("short_neutral", SHORT_NEUTRAL),
        ("tweet_emoticon", TWEET_EMOTICON),
        ("negation_booster_but", NEGATION_BOOSTER_BUT),
        ("emoji_non_ascii", EMOJI_NON_ASCII),
        ("paragraph_2000_words", &long),
    ];
    // The cases must exercise what they are named after.
    let mut scorer = Scorer::new();
    assert_eq!(scorer.score(SHORT_NEUTRAL).compound, 0.0);
    assert!(scorer.score(TWEET_EMOTICON).compound > 0.5);
    assert_ne!(scorer.score(NEGATION_BOOSTER_BUT).compound, 0.0);
    assert!(!EMOJI_NON_ASCII.is_ascii());

    let mut group = c.benchmark_group("polarity_scores");
    group.throughput(Throughput::Elements(1));
    for (name, text) in cases {
        group.bench_function(name, |b| b.iter(|| polarity_scores(black_box(text))));
    }
    group.finish();
}

fn bench_analyze(c: &mut Criterion) {
    let doc = document(2 << 20);
    let options = Options::new(Format::Text);
    let report = analyze(doc.as_bytes(), &options, &mut ()).expect("the document analyses");
    assert!(report.items > 10_000);

    let mut group = c.benchmark_group("analyze");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.sample_size(20);
    group.bench_function("text_2mib", |b| {
        b.iter(|| analyze(black_box(doc.as_bytes()), &options, &mut ()).expect("analyses"))
    });
    // The cost of telling each sentence's language, side by side with the run above.
    let mut without = Options::new(Format::Text);
    without.languages = false;
    group.bench_function("text_2mib_without_languages", |b| {
        b.iter(|| analyze(black_box(doc.as_bytes()), &without, &mut ()).expect("analyses"))
    });
    group.bench_function("split_sentences_2mib", |b| {
        b.iter(|| Chunk::text_ranges(black_box(&doc)))
    });
    let sentences: Vec<&str> = Chunk::text_ranges(&doc)
        .into_iter()
        .map(|r| &doc[r])
        .collect();
    assert_eq!(sentences.len() as u64, report.items);
    let mut scorer = Scorer::new();
    group.bench_function("score_sentences_2mib", |b| {
        b.iter(|| {
            sentences
                .iter()
                .map(|s| scorer.score(black_box(s)).compound)
                .sum::<f64>()
        })
    });
    group.bench_function("detect_language_sentences_2mib", |b| {
        b.iter(|| {
            sentences
                .iter()
                .filter(|s| sentiq::analysis::lang::detect(black_box(s)) == Some("en"))
                .count()
        })
    });
    group.finish();

    let small = "I loved the first half. The ending was a letdown, sadly.";
    let mut group = c.benchmark_group("analyze");
    group.throughput(Throughput::Elements(1));
    group.bench_function("small_job", |b| {
        b.iter(|| analyze(black_box(small.as_bytes()), &options, &mut ()).expect("analyses"))
    });
    group.finish();
}

criterion_group!(benches, bench_polarity_scores, bench_analyze);
criterion_main!(benches);
