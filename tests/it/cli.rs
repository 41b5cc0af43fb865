//! Black-box tests of the `sentiq` binary: they run the real executable on files and standard
//! input and check only what a user sees (stdout, stderr, exit code).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What one run of the binary left behind.
struct Run {
    what: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }

    /// Exit 0, nothing on stderr; returns stdout.
    fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "`{}` failed with {:?}: {}",
            self.what,
            self.status,
            self.stderr
        );
        assert!(
            self.stderr.is_empty(),
            "`{}` succeeded but wrote to stderr: {}",
            self.what,
            self.stderr
        );
        self.stdout()
    }

    /// A clean failure: exit code 1, nothing on stdout, one `error: ...` message and no panic.
    /// Returns the stderr text.
    fn fails(&self) -> &str {
        assert_eq!(
            self.status.code(),
            Some(1),
            "`{}` should fail with exit code 1; stderr: {}",
            self.what,
            truncate(&self.stderr)
        );
        assert!(
            self.stdout.is_empty(),
            "`{}` failed but printed {} bytes to stdout: {}",
            self.what,
            self.stdout.len(),
            truncate(&String::from_utf8_lossy(&self.stdout))
        );
        assert!(
            self.stderr.starts_with("error: "),
            "`{}`: stderr should start with \"error: \": {}",
            self.what,
            truncate(&self.stderr)
        );
        assert!(
            !self.stderr.contains("panicked"),
            "`{}` panicked: {}",
            self.what,
            truncate(&self.stderr)
        );
        &self.stderr
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 600 {
        return s.to_owned();
    }
    let mut end = 600;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentiq"));
    cmd.args(args)
        .env_remove("SENTIQ_THREADS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run `sentiq ARGS` with an empty standard input.
fn sentiq(args: &[&str]) -> Run {
    let output = command(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sentiq");
    Run {
        what: format!("sentiq {}", args.join(" ")),
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Run `sentiq ARGS` with `input` on standard input.
fn sentiq_stdin(args: &[&str], input: &[u8]) -> Run {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run sentiq");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The binary may stop reading early when it fails; a broken pipe is fine then.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for sentiq");
    writer.join().expect("stdin writer");
    Run {
        what: format!("sentiq {} < input", args.join(" ")),
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Write `bytes` to `dir/name` and return the path as a string.
fn file(dir: &TempDir, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write test input");
    path_str(&path)
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// The scores `sentiq score` printed, one `[neg, neu, pos, compound]` per line. Checks that each
/// line is a JSON object with exactly those keys, in that order.
fn scores(stdout: &str) -> Vec<[f64; 4]> {
    assert!(
        stdout.is_empty() || stdout.ends_with('\n'),
        "score output must end with a line feed"
    );
    stdout
        .split_terminator('\n')
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            let obj = v.as_object().expect("a JSON object per line");
            let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                BTreeSet::from(["neg", "neu", "pos", "compound"]),
                "{line}"
            );
            let at = |k: &str| line.find(&format!("\"{k}\"")).expect("key present");
            assert!(
                at("neg") < at("neu") && at("neu") < at("pos") && at("pos") < at("compound"),
                "keys must come in the order neg, neu, pos, compound: {line}"
            );
            ["neg", "neu", "pos", "compound"].map(|k| {
                obj[k]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{k} is not a number: {line}"))
            })
        })
        .collect()
}

fn compounds(stdout: &str) -> Vec<f64> {
    scores(stdout).iter().map(|s| s[3]).collect()
}

/// The report `sentiq analyze` printed, with its shape checked.
fn report(stdout: &str) -> Value {
    let r: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("analyze did not print JSON ({e}): {}", truncate(stdout)));
    for key in [
        "format",
        "items",
        "mean_compound",
        "labels",
        "histogram",
        "arc",
        "most_positive",
        "most_negative",
        "elapsed_ms",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}: {r}");
    }
    let items = r["items"].as_u64().expect("items is a count");
    let histogram = array(&r["histogram"]);
    assert_eq!(histogram.len(), 20, "histogram has 20 bins");
    assert_eq!(
        histogram.iter().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        items,
        "histogram sums to items"
    );
    let labels = &r["labels"];
    assert_eq!(
        labels["positive"].as_u64().unwrap()
            + labels["neutral"].as_u64().unwrap()
            + labels["negative"].as_u64().unwrap(),
        items,
        "labels sum to items"
    );
    assert_eq!(
        array(&r["arc"]).len() as u64,
        items.min(100),
        "arc length is min(100, items)"
    );
    assert!(array(&r["most_positive"]).len() <= 5);
    assert!(array(&r["most_negative"]).len() <= 5);
    assert!(r["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    r
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
}

fn items(r: &Value) -> u64 {
    r["items"].as_u64().unwrap()
}

/// The histogram bin of a compound score: bin k holds [-1 + k/10, -1 + (k+1)/10), the last bin
/// also holds 1.0. Compounds have 4 decimals, so integer ticks make the edges exact.
fn bin(compound: f64) -> usize {
    let ticks = (compound * 10_000.0).round() as i64 + 10_000;
    ((ticks / 1_000) as usize).min(19)
}

/// Score `lines` with `sentiq score` (one line each) and return the compounds.
fn score_each(dir: &TempDir, lines: &[&str]) -> Vec<f64> {
    let path = file(dir, "each.txt", lines.join("\n") + "\n");
    let out = sentiq(&["score", &path]);
    let c = compounds(out.ok());
    assert_eq!(c.len(), lines.len());
    c
}

const ZEROS: [f64; 4] = [0.0, 0.0, 0.0, 0.0];

// ---------------------------------------------------------------------------------------------
// score
// ---------------------------------------------------------------------------------------------

#[test]
fn score_prints_one_line_per_input_line_including_blank_lines() {
    let dir = tempdir();
    // 6 lines: two blank ones in the middle, a whitespace-only one, final newline.
    let path = file(
        &dir,
        "lines.txt",
        "I love it.\n\n\nI hate it.\n   \nThe end.\n",
    );
    let s = scores(sentiq(&["score", &path]).ok());
    assert_eq!(s.len(), 6);
    assert!(s[0][3] > 0.0, "line 1 is positive: {:?}", s[0]);
    assert_eq!(s[1], ZEROS, "blank line 2");
    assert_eq!(s[2], ZEROS, "blank line 3");
    assert!(
        s[3][3] < 0.0,
        "line 4 is negative, so order is kept: {:?}",
        s[3]
    );
    assert_eq!(s[4], ZEROS, "whitespace-only line 5");

    // Without the final newline the last line is still scored, and nothing extra appears.
    let path = file(&dir, "no_final_newline.txt", "I love it.\n\nI hate it.");
    let s = scores(sentiq(&["score", &path]).ok());
    assert_eq!(s.len(), 3);
    assert!(s[2][3] < 0.0);

    // A final blank line (two trailing newlines) is a line of its own.
    let path = file(&dir, "trailing_blank.txt", "I love it.\n\n");
    let s = scores(sentiq(&["score", &path]).ok());
    assert_eq!(s.len(), 2);
    assert_eq!(s[1], ZEROS);
}

/// Sentences and the scores vaderSentiment 3.3.2 gives them. The expected values were computed
/// once by running `/work/shared/tools/vader_reference.py --format lines` (the Python reference)
/// on exactly these lines and pasted here; the test itself does not need Python.
const REFERENCE: &[(&str, [f64; 4])] = &[
    (
        "VADER is smart, handsome, and funny.",
        [0.0, 0.254, 0.746, 0.8316],
    ),
    (
        "VADER is VERY SMART, handsome, and FUNNY!!!",
        [0.0, 0.233, 0.767, 0.9342],
    ),
    (
        "The book was good, but the ending was not great at all.",
        [0.271, 0.61, 0.119, -0.5409],
    ),
    (
        "I don't think this is a bad idea :)",
        [0.259, 0.519, 0.222, -0.128],
    ),
    ("Today SUX!", [0.779, 0.221, 0.0, -0.5461]),
    ("Make sure you :) or :D today!", [0.0, 0.294, 0.706, 0.8633]),
    ("Not bad at all", [0.0, 0.513, 0.487, 0.431]),
    (
        "The plot was kind of good, but the characters are uncompelling and the dialog is not great.",
        [0.301, 0.62, 0.08, -0.7173],
    ),
    (
        "I \u{2764}\u{fe0f} you \u{1F600} but \u{1F494}",
        [0.234, 0.339, 0.427, 0.5267],
    ),
    (
        "She is the shit, no doubt about it.",
        [0.0, 0.294, 0.706, 0.9186],
    ),
    ("no no no good", [0.335, 0.139, 0.526, 0.0951]),
    ("I'm not  happy?? really???", [0.569, 0.431, 0.0, -0.607]),
    // U+0085 (NEL) is whitespace to Python's str.split().
    ("Great\u{85}day", [0.0, 0.196, 0.804, 0.6249]),
    // A lone carriage return does not end a line; it separates words.
    ("good\rbad\rawful", [0.691, 0.0, 0.309, -0.5574]),
    ("", [0.0, 0.0, 0.0, 0.0]),
    (
        "Ces crêpes sont délicieuses, très bonnes ! \u{1F60B}",
        [0.0, 1.0, 0.0, 0.0],
    ),
];

#[test]
fn score_matches_the_python_reference_for_chosen_sentences() {
    let dir = tempdir();
    let text: String = REFERENCE.iter().map(|(s, _)| format!("{s}\n")).collect();
    let path = file(&dir, "reference.txt", &text);
    let got = scores(sentiq(&["score", &path]).ok());
    assert_eq!(got.len(), REFERENCE.len());
    for ((sentence, want), got) in REFERENCE.iter().zip(&got) {
        assert_eq!(got, want, "scores of {sentence:?}");
    }
}

#[test]
fn score_drops_the_carriage_return_of_crlf_line_endings() {
    let dir = tempdir();
    let lf = file(&dir, "lf.txt", "Great day!\n\nAwful, awful night.\nmeh\n");
    let crlf = file(
        &dir,
        "crlf.txt",
        "Great day!\r\n\r\nAwful, awful night.\r\nmeh\r\n",
    );
    let want = sentiq(&["score", &lf]);
    let got = sentiq(&["score", &crlf]);
    assert_eq!(scores(got.ok()).len(), 4, "CRLF lines are lines");
    assert_eq!(got.ok(), want.ok(), "CRLF scores like LF");
    // The blank CRLF line is a blank line, not a line holding "\r".
    assert_eq!(scores(got.ok())[1], ZEROS);
}

#[test]
fn score_drops_a_leading_byte_order_mark_and_only_that_one() {
    let dir = tempdir();
    // "Great" must be the first word: with the BOM glued to it, it would not be in the lexicon.
    let plain = file(&dir, "plain.txt", "Great day\nGreat day\n");
    let bom = file(&dir, "bom.txt", "\u{feff}Great day\n\u{feff}Great day\n");
    let want = scores(sentiq(&["score", &plain]).ok());
    let got = scores(sentiq(&["score", &bom]).ok());
    assert_eq!(got.len(), 2);
    assert!(want[0][3] > 0.0);
    assert_eq!(got[0], want[0], "the leading BOM is not part of the text");
    // Python only strips the BOM at the start of the file: "\ufeffgreat" on line 2 is an unknown
    // word (reference: neg 0, neu 1, pos 0, compound 0).
    assert_eq!(got[1], [0.0, 1.0, 0.0, 0.0]);

    // A file that is nothing but a BOM is empty.
    let only_bom = file(&dir, "only_bom.txt", "\u{feff}");
    let err = sentiq(&["score", &only_bom]);
    assert!(err.fails().contains("nothing to analyse"), "{}", err.stderr);
}

#[test]
fn score_reads_standard_input_when_the_file_is_absent_or_a_dash() {
    let dir = tempdir();
    let mut text = String::from("\u{feff}");
    for (i, (s, _)) in REFERENCE.iter().enumerate() {
        text.push_str(s);
        text.push_str(if i % 2 == 0 { "\n" } else { "\r\n" });
    }
    let path = file(&dir, "input.txt", &text);
    let from_file = sentiq(&["score", &path]);
    let from_stdin = sentiq_stdin(&["score"], text.as_bytes());
    let from_dash = sentiq_stdin(&["score", "-"], text.as_bytes());
    assert_eq!(scores(from_file.ok()).len(), REFERENCE.len());
    assert_eq!(from_stdin.ok(), from_file.ok());
    assert_eq!(from_dash.ok(), from_file.ok());
}

#[test]
fn score_of_a_file_holding_only_a_newline_prints_one_line_of_zeros() {
    let dir = tempdir();
    let path = file(&dir, "newline.txt", "\n");
    let out = sentiq(&["score", &path]);
    assert_eq!(
        out.ok(),
        "{\"neg\":0.0,\"neu\":0.0,\"pos\":0.0,\"compound\":0.0}\n"
    );
    assert_eq!(scores(out.ok()), vec![ZEROS]);
}

#[test]
fn score_of_empty_input_is_nothing_to_analyse() {
    let dir = tempdir();
    let path = file(&dir, "empty.txt", "");
    let run = sentiq(&["score", &path]);
    assert!(run.fails().contains("nothing to analyse"), "{}", run.stderr);
    let run = sentiq_stdin(&["score"], b"");
    assert!(run.fails().contains("nothing to analyse"), "{}", run.stderr);
}

#[test]
fn score_handles_multibyte_characters_split_across_read_buffers() {
    let dir = tempdir();
    // Long lines of 2-, 3- and 4-byte characters cross every internal buffer edge at odd offsets.
    let line1 = "é".repeat(40_001);
    let line2 = "€".repeat(30_001);
    let line3 = "\u{1F600}".repeat(20_001);
    let text = format!("x{line1}\n{line2}\nxy{line3}\ngood\n");
    let path = file(&dir, "multibyte.txt", &text);
    let s = scores(sentiq(&["score", &path]).ok());
    assert_eq!(s.len(), 4);
    assert!(s[3][3] > 0.0, "the line after them is scored: {:?}", s[3]);
}

// ---------------------------------------------------------------------------------------------
// invalid UTF-8
// ---------------------------------------------------------------------------------------------

fn assert_invalid_utf8(run: &Run, line: u64, byte_offset: u64) {
    let stderr = run.fails();
    let want = format!("error: invalid UTF-8 on line {line} at byte offset {byte_offset}");
    let rest = stderr.strip_prefix(&want);
    assert!(
        rest.is_some_and(|r| !r.starts_with(|c: char| c.is_ascii_digit())),
        "`{}`: expected {want:?}..., got {stderr:?}",
        run.what
    );
}

#[test]
fn invalid_utf8_in_line_3_names_the_line_and_byte_offset_and_prints_nothing() {
    let dir = tempdir();
    // "fine\n" is 5 bytes, "also fine\n" 10, "bad " 4: the 0xFF byte is at offset 19.
    let input: &[u8] = b"fine\nalso fine\nbad \xff here\n";
    let path = file(&dir, "bad.txt", input);
    assert_invalid_utf8(&sentiq(&["score", &path]), 3, 19);
    assert_invalid_utf8(&sentiq_stdin(&["score"], input), 3, 19);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 19);
    assert_invalid_utf8(&sentiq_stdin(&["analyze", "-"], input), 3, 19);

    // The same in a CSV file: "text\n" 5 + "fine\n" 5 + "bad " 4 = 14.
    let path = file(&dir, "bad.csv", b"text\nfine\nbad \xff here\n");
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 14);

    // And in JSONL: two 14-byte lines, then `{"text":"` (9 bytes).
    let path = file(
        &dir,
        "bad.jsonl",
        b"{\"text\":\"ok\"}\n{\"text\":\"ok\"}\n{\"text\":\"\xff\"}\n",
    );
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 37);

    // A BOM is part of the file, so it counts towards the byte offset (3 + 19).
    let path = file(
        &dir,
        "bom_bad.txt",
        b"\xef\xbb\xbffine\nalso fine\nbad \xff here\n",
    );
    assert_invalid_utf8(&sentiq(&["score", &path]), 3, 22);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 22);
}

#[test]
fn invalid_utf8_after_long_multibyte_lines_has_the_exact_byte_offset() {
    let dir = tempdir();
    // 90_001 + 80_001 bytes of multibyte lines, then "ok " (3 bytes): offset 170_005.
    let mut input = "€".repeat(30_000).into_bytes();
    input.push(b'\n');
    input.extend("\u{1F600}".repeat(20_000).as_bytes());
    input.push(b'\n');
    input.extend(b"ok \xc3\x28 not a continuation\n");
    assert_eq!(input.len(), 90_001 + 80_001 + 3 + 22);
    let path = file(&dir, "bad.txt", &input);
    assert_invalid_utf8(&sentiq(&["score", &path]), 3, 170_005);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 170_005);
}

#[test]
fn invalid_utf8_on_line_50001_prints_nothing_from_either_command() {
    let dir = tempdir();
    let good: String = (1..=50_000)
        .map(|i| format!("Line {i} of the file is perfectly fine, even good.\n"))
        .collect();
    let mut input = good.clone().into_bytes();
    input.extend(b"but this one is bad \xfe\xff\n");
    // The offset is the length of the 50,000 good lines plus "but this one is bad ".
    let offset = (good.len() + "but this one is bad ".len()) as u64;
    assert_eq!(Some(offset as usize), input.iter().position(|&b| b == 0xfe));
    let path = file(&dir, "big.txt", &input);
    assert_invalid_utf8(&sentiq(&["score", &path]), 50_001, offset);
    assert_invalid_utf8(&sentiq_stdin(&["score", "-"], &input), 50_001, offset);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 50_001, offset);

    // A CSV of 50,001 lines: header, 49,999 good rows, then the bad one.
    let mut csv = b"id,text\n".to_vec();
    for i in 1..50_000 {
        csv.extend(format!("{i},\"Row {i} is fine, really.\"\n").as_bytes());
    }
    let offset = csv.len() as u64 + "50000,\"bad ".len() as u64;
    csv.extend(b"50000,\"bad \xff\"\n");
    let path = file(&dir, "big.csv", &csv);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 50_001, offset);

    // A JSONL file of 50,001 lines.
    let mut jsonl = Vec::new();
    for i in 1..=50_000 {
        jsonl.extend(format!("{{\"id\":{i},\"text\":\"Line {i} is fine.\"}}\n").as_bytes());
    }
    let offset = jsonl.len() as u64 + "{\"text\":\"".len() as u64;
    jsonl.extend(b"{\"text\":\"\xc0\xaf\"}\n");
    let path = file(&dir, "big.jsonl", &jsonl);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 50_001, offset);
}

#[test]
fn a_truncated_multibyte_sequence_at_the_end_of_the_file_is_invalid_utf8() {
    let dir = tempdir();
    // "ok\n", then the first two bytes of "€" (E2 82 AC) and the end of the file.
    let path = file(&dir, "cut.txt", b"ok\n\xe2\x82");
    assert_invalid_utf8(&sentiq(&["score", &path]), 2, 3);
    assert_invalid_utf8(&sentiq_stdin(&["score"], b"ok\n\xe2\x82"), 2, 3);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 2, 3);
    // The first three bytes of a four-byte emoji, after a complete one.
    let path = file(&dir, "cut_emoji.txt", b"good \xf0\x9f\x98\x80 \xf0\x9f\x98");
    assert_invalid_utf8(&sentiq(&["score", &path]), 1, 10);
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 1, 10);
    let path = file(&dir, "cut.csv", b"text\nok\n\xe2\x82");
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 3, 8);
    let path = file(&dir, "cut.jsonl", b"{\"text\":\"ok\"}\n\xe2\x82");
    assert_invalid_utf8(&sentiq(&["analyze", &path]), 2, 14);
}

// ---------------------------------------------------------------------------------------------
// empty input, missing files
// ---------------------------------------------------------------------------------------------

#[test]
fn analyze_of_an_empty_file_is_nothing_to_analyse() {
    let dir = tempdir();
    for name in ["empty.txt", "empty.csv", "empty.jsonl"] {
        let path = file(&dir, name, "");
        let run = sentiq(&["analyze", &path]);
        assert!(
            run.fails().contains("nothing to analyse"),
            "{name}: {}",
            run.stderr
        );
    }
    let run = sentiq_stdin(&["analyze", "-"], b"");
    assert!(run.fails().contains("nothing to analyse"), "{}", run.stderr);
}

#[test]
fn analyze_of_a_whitespace_only_file_is_nothing_to_analyse() {
    let dir = tempdir();
    let blank = " \n\t\n\r\n   \n\u{a0}\u{3000}\n\n";
    for name in ["blank.txt", "blank.jsonl"] {
        let path = file(&dir, name, blank);
        let run = sentiq(&["analyze", &path]);
        assert!(
            run.fails().contains("nothing to analyse"),
            "{name}: {}",
            run.stderr
        );
    }
    // A CSV with a header but no rows has nothing to analyse either.
    let path = file(&dir, "header_only.csv", "id,text\n");
    let run = sentiq(&["analyze", &path]);
    assert!(run.fails().contains("nothing to analyse"), "{}", run.stderr);
}

#[test]
fn a_nonexistent_file_is_named_in_the_error() {
    let dir = tempdir();
    let path = path_str(&dir.path().join("no-such-file.txt"));
    for cmd in ["score", "analyze"] {
        let run = sentiq(&[cmd, &path]);
        let stderr = run.fails();
        assert!(stderr.contains(&path), "{cmd}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// analyze
// ---------------------------------------------------------------------------------------------

#[test]
fn analyze_splits_a_text_document_into_sentences_that_agree_with_score() {
    let dir = tempdir();
    let document = "I love this product. It broke after a day, which is terrible.\n\
                    Neutral line\n\
                    \n\
                    What a wonderful, wonderful morning!   The coffee was cold? Nobody cares.\n   \
                    Honestly, the worst service I have ever had.\n\
                    Good enough. Great, just great!! Fine. Bad. Sad.\n";
    let sentences = [
        "I love this product.",
        "It broke after a day, which is terrible.",
        "Neutral line",
        "What a wonderful, wonderful morning!",
        "The coffee was cold?",
        "Nobody cares.",
        "Honestly, the worst service I have ever had.",
        "Good enough.",
        "Great, just great!!",
        "Fine.",
        "Bad.",
        "Sad.",
    ];
    let want = score_each(&dir, &sentences);
    let path = file(&dir, "doc.txt", document);
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(r["format"], "text");
    assert_eq!(items(&r), sentences.len() as u64, "{r}");

    let count = |f: fn(f64) -> bool| want.iter().filter(|&&c| f(c)).count() as u64;
    assert_eq!(r["labels"]["positive"], count(|c| c >= 0.05), "{r}");
    assert_eq!(
        r["labels"]["neutral"],
        count(|c| c > -0.05 && c < 0.05),
        "{r}"
    );
    assert_eq!(r["labels"]["negative"], count(|c| c <= -0.05), "{r}");
    assert!(count(|c| c >= 0.05) >= 3 && count(|c| c <= -0.05) >= 3);

    let mut histogram = vec![0u64; 20];
    for &c in &want {
        histogram[bin(c)] += 1;
    }
    let got: Vec<u64> = array(&r["histogram"])
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(got, histogram);

    // Up to 100 items the arc is the compound of each item, in text order.
    let arc: Vec<f64> = array(&r["arc"])
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(arc, want);

    let mean = want.iter().sum::<f64>() / want.len() as f64;
    let got_mean = r["mean_compound"].as_f64().unwrap();
    assert!(
        (got_mean - mean).abs() <= 0.00005 + 1e-12,
        "{got_mean} vs {mean}"
    );

    // Highlights: strongest first, earlier first on ties, at most five, with their text.
    let check = |key: &str, positive: bool| {
        let mut expect: Vec<(usize, f64)> = want
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, c)| if positive { c > 0.0 } else { c < 0.0 })
            .collect();
        expect.sort_by(|a, b| {
            if positive {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            }
        });
        expect.truncate(5);
        let got = array(&r[key]);
        assert_eq!(got.len(), expect.len(), "{key}: {r}");
        for (h, &(i, c)) in got.iter().zip(&expect) {
            assert_eq!(h["position"], i as u64, "{key}: {h}");
            assert_eq!(h["text"], sentences[i], "{key}: {h}");
            assert_eq!(h["compound"], c, "{key}: {h}");
            assert_eq!(h["truncated"], false, "{key}: {h}");
            assert!(h.get("id").is_none(), "text items have no id: {h}");
        }
    };
    check("most_positive", true);
    check("most_negative", false);
}

#[test]
fn analyze_arc_has_at_most_a_hundred_points() {
    let dir = tempdir();
    // 150 sentences: the first 75 positive, the last 75 negative.
    let text = "What a lovely day. ".repeat(75) + "\n" + &"This is awful. ".repeat(75) + "\n";
    let path = file(&dir, "long.txt", &text);
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(items(&r), 150);
    let arc: Vec<f64> = array(&r["arc"])
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(arc.len(), 100);
    let lovely = score_each(&dir, &["What a lovely day."])[0];
    let awful = score_each(&dir, &["This is awful."])[0];
    assert!(lovely > 0.0 && awful < 0.0);
    assert!(arc[..50].iter().all(|&v| v == lovely), "{arc:?}");
    assert!(arc[50..].iter().all(|&v| v == awful), "{arc:?}");
    assert_eq!(r["labels"]["positive"], 75);
    assert_eq!(r["labels"]["negative"], 75);
}

#[test]
fn analyze_csv_uses_the_review_column_and_the_id_column() {
    let dir = tempdir();
    let csv = "id,Review,note\n\
               7,\"Great, really great!\",awful\n\
               8,meh,wonderful\n\
               9,\"A plain row\nthat spans two lines\",terrible\n";
    let path = file(&dir, "reviews.csv", csv);
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(r["format"], "csv");
    assert_eq!(items(&r), 3);
    let want = score_each(&dir, &["Great, really great!", "meh"]);
    let top = &r["most_positive"][0];
    assert_eq!(top["id"], "7");
    assert_eq!(top["position"], 0);
    assert_eq!(top["text"], "Great, really great!");
    assert_eq!(top["compound"], want[0]);
    let bottom = &r["most_negative"][0];
    assert_eq!(bottom["id"], "8");
    assert_eq!(bottom["text"], "meh");
    assert_eq!(bottom["compound"], want[1]);
    assert_eq!(
        r["labels"]["neutral"], 1,
        "the two-line row is one neutral item: {r}"
    );
}

#[test]
fn analyze_csv_column_option_picks_another_column_case_insensitively() {
    let dir = tempdir();
    let csv = "id,review,Note\n7,\"Great, really great!\",awful\n8,meh,wonderful\n";
    let path = file(&dir, "reviews.csv", csv);
    let want = score_each(&dir, &["awful", "wonderful"]);
    for name in ["note", "NOTE", "Note"] {
        let r = report(sentiq(&["analyze", &path, "--column", name]).ok());
        assert_eq!(items(&r), 2);
        let neg = &r["most_negative"][0];
        assert_eq!(neg["text"], "awful", "--column {name}: {r}");
        assert_eq!(neg["id"], "7");
        assert_eq!(neg["compound"], want[0]);
        let pos = &r["most_positive"][0];
        assert_eq!(pos["text"], "wonderful", "--column {name}: {r}");
        assert_eq!(pos["id"], "8");
        assert_eq!(pos["compound"], want[1]);
    }
}

#[test]
fn analyze_csv_without_a_text_column_lists_its_columns() {
    let dir = tempdir();
    let path = file(&dir, "stars.csv", "name,stars,when\nbob,5,today\n");
    let run = sentiq(&["analyze", &path]);
    let stderr = run.fails();
    assert!(
        stderr.contains("\"name\", \"stars\", \"when\""),
        "the columns are listed in quotes: {stderr}"
    );
    assert!(stderr.contains("text column"), "{stderr}");
}

#[test]
fn analyze_csv_column_option_naming_a_missing_column_names_it_and_lists_the_columns() {
    let dir = tempdir();
    let path = file(&dir, "reviews.csv", "id,review\n1,good\n");
    let run = sentiq(&["analyze", &path, "--column", "missing"]);
    let stderr = run.fails();
    assert!(stderr.contains("\"missing\""), "{stderr}");
    assert!(stderr.contains("\"id\", \"review\""), "{stderr}");
}

#[test]
fn analyze_jsonl_highlights_carry_string_and_number_ids() {
    let dir = tempdir();
    let jsonl = "{\"text\":\"I love it\",\"id\":\"a1\"}\n\
                 {\"text\":\"I hate it\",\"id\":42}\n\
                 \n\
                 {\"id\":-7.5,\"text\":\"Terrible, awful day\"}\n\
                 {\"text\":\"meh\"}\n\
                 {\"text\":\"Superb\",\"id\":null}\n";
    let want = score_each(
        &dir,
        &[
            "I love it",
            "I hate it",
            "Terrible, awful day",
            "meh",
            "Superb",
        ],
    );
    let path = file(&dir, "items.ndjson", jsonl);
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(r["format"], "jsonl");
    assert_eq!(items(&r), 5, "the blank line is no item");
    assert!(
        want[2] < want[1] && want[1] < want[3] && want[3] < 0.0,
        "{want:?}"
    );
    assert!(want[0] > 0.0 && want[4] > 0.0);

    let neg = array(&r["most_negative"]);
    assert_eq!(neg.len(), 3);
    assert_eq!(neg[0]["id"], "-7.5");
    assert_eq!(neg[0]["position"], 2);
    assert_eq!(neg[0]["compound"], want[2]);
    assert_eq!(neg[1]["id"], "42");
    assert_eq!(neg[1]["text"], "I hate it");
    assert!(neg[2].get("id").is_none(), "no id, no id key: {}", neg[2]);
    assert_eq!(neg[2]["text"], "meh");

    let pos = array(&r["most_positive"]);
    let ids: Vec<Option<&str>> = pos.iter().map(|h| h["id"].as_str()).collect();
    let texts: Vec<&str> = pos.iter().map(|h| h["text"].as_str().unwrap()).collect();
    let love_first = want[0] >= want[4];
    let (first, second) = if love_first { (0, 1) } else { (1, 0) };
    assert_eq!(texts[first], "I love it");
    assert_eq!(ids[first], Some("a1"));
    assert_eq!(texts[second], "Superb");
    assert_eq!(ids[second], None, "a null id is no id");
}

#[test]
fn analyze_jsonl_with_a_bad_line_names_the_line_number() {
    let dir = tempdir();
    let cases: &[(&str, &str)] = &[
        ("{\"text\":\"good\"}\n\n{\"text\": 5}\n", "line 3"),
        ("{\"text\":\"good\"}\n{not json}\n", "line 2"),
        (
            "{\"text\":\"good\"}\n{\"text\":\"x\",\"id\":[1]}\n",
            "line 2",
        ),
        ("\n\n\n{\"id\":1}\n", "line 4"),
        (
            "{\"text\":\"good\"}\r\n{\"text\":\"x\"} trailing\r\n",
            "line 2",
        ),
    ];
    for (i, (input, line)) in cases.iter().enumerate() {
        let path = file(&dir, &format!("bad{i}.jsonl"), input);
        let run = sentiq(&["analyze", &path]);
        let stderr = run.fails();
        assert!(
            stderr.starts_with(&format!("error: {line}: ")),
            "{input:?}: expected {line}, got {stderr}"
        );
    }
}

#[test]
fn analyze_jsonl_rejects_a_line_that_is_an_array() {
    let dir = tempdir();
    let path = file(
        &dir,
        "arrays.jsonl",
        "{\"text\":\"good\"}\n[\"I love it\", 5]\n",
    );
    let run = sentiq(&["analyze", &path]);
    assert!(run.fails().starts_with("error: line 2: "), "{}", run.stderr);
}

#[test]
fn analyze_format_option_overrides_the_file_extension() {
    let dir = tempdir();
    // JSONL in a .txt file.
    let path = file(
        &dir,
        "items.txt",
        "{\"text\":\"I love it. I hate it.\",\"id\":1}\n{\"text\":\"It is a table.\",\"id\":2}\n",
    );
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(r["format"], "text");
    let r = report(sentiq(&["analyze", &path, "--format", "jsonl"]).ok());
    assert_eq!(r["format"], "jsonl");
    assert_eq!(items(&r), 2, "one item per line, not per sentence");
    assert_eq!(r["most_positive"][0]["id"], "1");

    // A text document named .csv.
    let path = file(
        &dir,
        "prose.csv",
        "Lovely weather. Horrible traffic, though.\n",
    );
    let run = sentiq(&["analyze", &path]);
    run.fails();
    let r = report(sentiq(&["analyze", &path, "--format", "text"]).ok());
    assert_eq!(r["format"], "text");
    assert_eq!(items(&r), 2);

    // A CSV named .jsonl.
    let path = file(
        &dir,
        "table.jsonl",
        "text\nLovely weather\nHorrible traffic\n",
    );
    sentiq(&["analyze", &path]).fails();
    let r = report(sentiq(&["analyze", &path, "--format", "csv"]).ok());
    assert_eq!(r["format"], "csv");
    assert_eq!(items(&r), 2);
}

#[test]
fn analyze_picks_the_format_from_the_extension() {
    let dir = tempdir();
    let jsonl = "{\"text\":\"Nice. Very nice.\"}\n";
    for (name, format, n) in [
        ("a.jsonl", "jsonl", 1),
        ("a.ndjson", "jsonl", 1),
        ("A.NDJSON", "jsonl", 1),
        ("a.json", "text", 2),
        ("a", "text", 2),
    ] {
        let path = file(&dir, name, jsonl);
        let r = report(sentiq(&["analyze", &path]).ok());
        assert_eq!(r["format"], format, "{name}");
        assert_eq!(items(&r), n, "{name}");
    }
    let path = file(&dir, "B.CSV", "Text\nNice. Very nice.\n");
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(r["format"], "csv");
    assert_eq!(items(&r), 1);
}

#[test]
fn analyze_reads_standard_input_given_a_dash() {
    let text = "I love this product. It broke after a day, which is terrible.\n";
    let r = report(sentiq_stdin(&["analyze", "-"], text.as_bytes()).ok());
    assert_eq!(r["format"], "text");
    assert_eq!(items(&r), 2);
    let r = report(
        sentiq_stdin(
            &["analyze", "-", "--format", "jsonl"],
            b"{\"text\":\"good\",\"id\":\"x\"}\n",
        )
        .ok(),
    );
    assert_eq!(r["most_positive"][0]["id"], "x");
}

#[test]
fn analyze_highlights_cut_long_texts_at_400_characters() {
    let dir = tempdir();
    let long = format!("Wonderful {}", "é".repeat(600));
    let path = file(&dir, "long.jsonl", format!("{{\"text\":\"{long}\"}}\n"));
    let r = report(sentiq(&["analyze", &path]).ok());
    let h = &r["most_positive"][0];
    assert_eq!(h["truncated"], true, "{h}");
    let text = h["text"].as_str().unwrap();
    assert_eq!(text.chars().count(), 401, "400 characters and an ellipsis");
    assert!(
        text.starts_with("Wonderful é") && text.ends_with("é…"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// nasty inputs: success or a clean error, never a panic
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Valid UTF-8 built from pieces that exercise VADER's rules and the parsers' special characters.
fn random_text(seed: u64, pieces: usize) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "good",
        "GOOD",
        "bad",
        "not",
        "never",
        "but",
        "very",
        "kind of",
        "least",
        "no",
        "!!!",
        "???",
        ":)",
        ":-(",
        "<3",
        "lol",
        "the shit",
        "sort of",
        " ",
        " ",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        ".",
        ",",
        "\"",
        "'",
        "{",
        "}",
        "[",
        "]",
        "\\",
        "é",
        "€",
        "\u{1F600}",
        "\u{1F494}",
        "\u{2764}\u{fe0f}",
        "\u{feff}",
        "\u{85}",
        "\u{2028}",
        "\u{200b}",
        "\u{0}",
        "\u{301}",
        "ǅ",
        "İ",
        "ß",
        "Σ",
    ];
    let mut rng = Rng(seed);
    let mut out = String::new();
    for _ in 0..pieces {
        out.push_str(PIECES[rng.below(PIECES.len())]);
    }
    out.into_bytes()
}

/// How many lines `score` must print for `input`: Python's `text.split("\n")` without the final
/// empty piece, after the BOM is dropped. None when the input is not UTF-8 or is empty.
fn python_line_count(input: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(input).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    let n = text.split('\n').count();
    Some(if text.ends_with('\n') { n - 1 } else { n })
}

/// Run every command on `input` (saved as `name`): `score`, `analyze` with the format the name
/// suggests, and `analyze --format F` for the two other formats. Each outcome must be a good
/// result or a clean error.
fn assert_survives(dir: &TempDir, name: &str, input: &[u8]) {
    let path = file(dir, name, input);
    let own = if name.ends_with(".csv") {
        "csv"
    } else if name.ends_with(".jsonl") {
        "jsonl"
    } else {
        "text"
    };
    let mut runs = vec![vec!["score", path.as_str()], vec!["analyze", path.as_str()]];
    for format in ["text", "csv", "jsonl"] {
        if format != own {
            runs.push(vec!["analyze", path.as_str(), "--format", format]);
        }
    }
    // The runs are independent: run them side by side to keep the test quick.
    let results: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = runs.iter().map(|args| s.spawn(|| sentiq(args))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("runner thread"))
            .collect()
    });
    for (args, run) in runs.iter().zip(&results) {
        assert!(
            !run.stderr.contains("panicked"),
            "{name}: `{}` panicked: {}",
            run.what,
            truncate(&run.stderr)
        );
        assert_ne!(
            run.status.code(),
            Some(101),
            "{name}: `{}` panicked",
            run.what
        );
        match run.status.code() {
            Some(0) => {
                let out = run.ok();
                if args[0] == "score" {
                    let want = python_line_count(input)
                        .unwrap_or_else(|| panic!("{name}: score accepted bad input"));
                    assert_eq!(scores(out).len(), want, "{name}: one line per input line");
                } else {
                    let r = report(out);
                    assert!(items(&r) > 0, "{name}: a report with no items: {r}");
                    let format = args.get(3).copied().unwrap_or(own);
                    assert_eq!(r["format"], format, "{name}: `{}`", run.what);
                }
            }
            Some(1) => {
                let stderr = run.fails();
                assert!(
                    !stderr.contains("internal error"),
                    "{name}: `{}`: {}",
                    run.what,
                    truncate(stderr)
                );
                assert_eq!(
                    stderr.trim_end().lines().count(),
                    1,
                    "{name}: one error line: {}",
                    truncate(stderr)
                );
            }
            other => panic!(
                "{name}: `{}` exited with {other:?} (killed by a signal?): {}",
                run.what,
                truncate(&run.stderr)
            ),
        }
    }
}

#[test]
fn nasty_bytes_and_text_never_make_either_command_panic() {
    let dir = tempdir();
    let cases: Vec<(&str, Vec<u8>)> =
        vec![
        ("random_bytes.bin", random_bytes(0x5eed_0001, 64 * 1024)),
        ("random_text.txt", random_text(0x5eed_0004, 8_000)),
        ("nul_bytes.txt", b"good\0bad\0\0\n\0\n\0".to_vec()),
        ("only_nul.txt", vec![0; 4096]),
        ("lone_cr.txt", b"happy\rsad\rangry\r".to_vec()),
        ("only_cr.txt", b"\r\r\r\r".to_vec()),
        ("many_blank_lines.txt", vec![b'\n'; 20_000]),
        ("overlong_encoding.txt", b"ok \xc0\xaf\n".to_vec()),
        ("encoded_surrogate.txt", b"ok \xed\xa0\x80\n".to_vec()),
        ("five_byte_sequence.txt", b"ok \xf8\x88\x80\x80\x80\n".to_vec()),
        ("double_bom.txt", "\u{feff}\u{feff}good\n".into()),
        ("punctuation_storm.txt", b"!?".repeat(10_000)),
        ("combining_marks.txt", format!("e{}", "\u{301}".repeat(10_000)).into_bytes()),
        (
            "bidi_and_separators.txt",
            "\u{202e} evil \u{2066} good \u{2028} sep \u{2029} par \u{3000}\u{a0}\u{1c}\u{1f}\n"
                .into(),
        ),
        ("caps_and_negations.txt", b"NOT NOT GOOD BUT BAD BUT never least ".repeat(500)),
        ("many_sentences.txt", b"a. ".repeat(10_000)),
    ];
    for (name, input) in &cases {
        assert_survives(&dir, name, input);
    }
}

#[test]
fn nasty_csv_and_jsonl_never_make_either_command_panic() {
    let dir = tempdir();
    let mut deep_text = String::from("{\"text\":");
    deep_text.push_str(&"{\"a\":".repeat(2_000));
    deep_text.push('1');
    deep_text.push_str(&"}".repeat(2_001));
    deep_text.push('\n');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random_bytes.csv", random_bytes(0x5eed_0002, 4 * 1024)),
        ("random_bytes.jsonl", random_bytes(0x5eed_0003, 4 * 1024)),
        ("random_text.csv", random_text(0x5eed_0005, 3_000)),
        ("random_text.jsonl", random_text(0x5eed_0006, 3_000)),
        (
            "nested_arrays.jsonl",
            [vec![b'['; 100_000], b"\n".to_vec()].concat(),
        ),
        ("nested_objects.jsonl", deep_text.into_bytes()),
        (
            "nested_id.jsonl",
            format!(
                "{{\"text\":\"x\",\"id\":{}{}}}\n",
                "[".repeat(5_000),
                "]".repeat(5_000)
            )
            .into_bytes(),
        ),
        (
            "json_oddities.jsonl",
            b"[1,2,3]\n42\nnull\n\"text\"\n{\"text\":\"ok\",\"id\":1e999999}\n".to_vec(),
        ),
        (
            "lone_surrogate.jsonl",
            b"{\"text\":\"\\ud800 good\"}\n".to_vec(),
        ),
        (
            "escaped_nul.jsonl",
            b"{\"text\":\"good\\u0000bad\",\"id\":\"\\u0000\"}\n".to_vec(),
        ),
        (
            "nul_bytes.jsonl",
            b"{\"text\":\"good\"}\0\n\0{\"text\":\"bad\"}\n".to_vec(),
        ),
        (
            "unbalanced_quotes.csv",
            b"text\n\"good stuff\nmore, and more\n".to_vec(),
        ),
        (
            "stray_quote.csv",
            b"id,text\n1,go\"od\n2,\"bad\"x\n".to_vec(),
        ),
        (
            "ragged_rows.csv",
            b"id,text,x\n1\n2,good,3,4,5\n3,bad\n".to_vec(),
        ),
        ("ragged_short.csv", b"a,b,text\n1,2\n".to_vec()),
        ("empty_header.csv", b",,\n1,2,3\n".to_vec()),
        ("duplicate_header.csv", b"text,TEXT\ngood,bad\n".to_vec()),
        ("bom_header.csv", b"\xef\xbb\xbftext\nhappy\n".to_vec()),
        ("lone_cr_rows.csv", b"id,text\r1,good\r2,bad\r".to_vec()),
        ("nul_bytes.csv", b"te\0xt\n\0\n".to_vec()),
    ];
    for (name, input) in &cases {
        assert_survives(&dir, name, input);
    }
}

#[test]
fn a_ten_megabyte_line_without_a_newline_is_handled_by_both_commands() {
    let dir = tempdir();
    // Longer than the 8 MiB limit for one item, with no whitespace to cut at.
    let input = vec![b'x'; 10 << 20];
    let path = file(&dir, "long_line.txt", &input);

    let s = scores(sentiq(&["score", &path]).ok());
    assert_eq!(s, vec![[0.0, 1.0, 0.0, 0.0]], "one unknown word, one line");

    let r = report(sentiq(&["analyze", &path]).ok());
    assert!(items(&r) >= 1);
    assert_eq!(r["labels"]["neutral"], items(&r));

    let run = sentiq(&["analyze", &path, "--format", "jsonl"]);
    assert!(run.fails().contains("8 MiB"), "{}", truncate(&run.stderr));
}

#[test]
fn a_line_of_200k_emoji_is_handled_by_both_commands() {
    let dir = tempdir();
    let input = "\u{1F600}".repeat(200_000);
    let path = file(&dir, "emoji.txt", &input);
    let s = scores(sentiq(&["score", &path]).ok());
    // The Python reference prints [0.0, 0.286, 0.714, 1.0] for a line of 2,000 of them (it is
    // too slow for 200k); the proportions do not depend on the count.
    assert_eq!(s, vec![[0.0, 0.286, 0.714, 1.0]]);
    let r = report(sentiq(&["analyze", &path]).ok());
    assert_eq!(items(&r), 1);
    assert_eq!(r["labels"]["positive"], 1);
    assert_eq!(r["most_positive"][0]["truncated"], true);
}

/// Regression: a run longer than the 8 MiB item limit with no whitespace used to be cut in the
/// middle of a 3-byte character ("internal error: validated text was not UTF-8").
#[test]
fn a_long_run_of_three_byte_characters_without_whitespace_is_analysed() {
    let dir = tempdir();
    let path = file(&dir, "euro.txt", "€".repeat(3_000_000));
    let r = report(sentiq(&["analyze", &path]).ok());
    assert!(items(&r) >= 1);
}

#[test]
fn score_and_analyze_stop_without_a_panic_when_stdout_is_closed() {
    let dir = tempdir();
    let path = file(&dir, "lines.txt", "good\n".repeat(50_000));
    for cmd in ["score", "analyze"] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_sentiq"))
            .args([cmd, path.as_str()])
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run sentiq");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Either a quiet stop or a clean error; never a panic or a signal.
        assert!(!stderr.contains("panicked"), "{cmd}: {stderr}");
        match output.status.code() {
            Some(0) => {}
            Some(1) => assert!(stderr.starts_with("error: "), "{cmd}: {stderr}"),
            other => panic!("{cmd}: exit {other:?}: {stderr}"),
        }
    }
}

#[test]
fn licenses_stops_without_a_panic_when_stdout_is_closed() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_sentiq"))
        .arg("licenses")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run sentiq");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    match output.status.code() {
        Some(0) => {}
        Some(1) => assert!(stderr.starts_with("error: "), "{stderr}"),
        other => panic!("exit {other:?}: {stderr}"),
    }
}

// ---------------------------------------------------------------------------------------------
// licenses
// ---------------------------------------------------------------------------------------------

#[test]
fn licenses_prints_the_mit_notice_naming_cj_hutto() {
    let out = sentiq(&["licenses"]);
    let text = out.ok();
    assert!(text.contains("The MIT License"), "{text}");
    assert!(text.contains("Copyright (c) 2016 C.J. Hutto"), "{text}");
    assert!(
        text.contains("Permission is hereby granted, free of charge"),
        "{text}"
    );
    assert!(text.contains("vaderSentiment 3.3.2"), "{text}");
}

#[test]
fn score_bench_times_the_scoring_loop_and_prints_no_scores() {
    let dir = tempdir();
    let path = file(&dir, "lines.txt", "good day\n\nbad night\n");
    let run = sentiq(&["--threads", "1", "score", "--bench", &path]);
    assert_eq!(run.status.code(), Some(0), "stderr: {}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "no scores in bench mode: {}",
        run.stdout()
    );
    assert!(
        run.stderr.contains("sentences=3 ") && run.stderr.contains("sentences_per_s="),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// sentiq keys
// ---------------------------------------------------------------------------------------------

/// `sentiq keys --database-url URL ARGS`.
fn keys(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["keys", "--database-url", url];
    all.extend_from_slice(args);
    sentiq(&all)
}

/// Make, list and revoke keys on `url`; the key made, as printed.
fn keys_round_trip(url: &str) -> String {
    let made = keys(
        url,
        &[
            "create",
            "acme",
            "--rate-per-minute",
            "30",
            "--max-running",
            "2",
        ],
    );
    assert!(made.status.success(), "{}", made.stderr);
    let key = made.stdout().trim().to_owned();
    assert_eq!(made.stdout().lines().count(), 1, "the key alone on stdout");
    assert!(key.starts_with("sq_") && key.len() == 46, "{key}");
    assert!(
        made.stderr.contains("only time it is shown"),
        "{}",
        made.stderr
    );
    assert!(
        made.stderr.contains(&format!("sq_{}…", &key[3..11])),
        "{}",
        made.stderr
    );
    assert!(!made.stderr.contains(&key[3..]), "the hint repeats the key");
    let again = keys(url, &["create", "acme"]);
    assert!(again.fails().contains("exists already"), "{}", again.stderr);
    let zero = keys(url, &["create", "other", "--max-running", "0"]);
    assert!(zero.fails().contains("at least 1"), "{}", zero.stderr);
    let blank = keys(url, &["create", " "]);
    assert!(blank.fails().contains("blank"), "{}", blank.stderr);
    let negative = keys(url, &["create", "other", "--rate-per-minute", "many"]);
    assert!(!negative.status.success() && negative.stdout.is_empty());
    assert!(
        negative.stderr.contains("--rate-per-minute"),
        "{}",
        negative.stderr
    );
    let list = keys(url, &["list"]);
    let table = list.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one key:\n{table}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SUCCEEDED"),
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "acme");
    assert_eq!(row[1], format!("sq_{}…", &key[3..11]));
    assert!(
        lines[1].contains("never") && lines[1].contains("active"),
        "{table}"
    );
    assert_eq!(
        &row[row.len() - 7..],
        ["30", "2", "0", "0", "0", "0", "0"],
        "{table}"
    );
    assert!(
        keys(url, &["revoke", "acme"])
            .ok()
            .contains("revoked: it is refused")
    );
    assert!(
        keys(url, &["revoke", "acme"])
            .ok()
            .contains("was revoked already")
    );
    let unknown = keys(url, &["revoke", "nobody"]);
    assert!(
        unknown.fails().contains("no API key is named \"nobody\""),
        "{}",
        unknown.stderr
    );
    assert!(keys(url, &["list"]).ok().contains("revoked"));
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_made_listed_and_revoked_from_the_command_line_on_sqlite_and_postgresql() {
    use sentiq::keys::{Auth, authenticate};
    let dir = tempdir();
    let lite = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let pg = crate::common::procs::FreshDatabase::create().await;
    for url in [lite.as_str(), pg.url.as_str()] {
        let key = keys_round_trip(url);
        let db = sentiq::db::Db::open(url, 2, sentiq::db::Plans::Cached)
            .await
            .unwrap();
        assert_eq!(
            authenticate(&db, &key).await.unwrap(),
            Auth::Revoked,
            "{url}"
        );
        db.close().await;
    }
    // A database that cannot be opened is a message and exit 1.
    let nowhere = keys("postgres://nobody@127.0.0.1:1/none", &["list"]);
    assert!(
        nowhere.fails().contains("could not open the database"),
        "{}",
        nowhere.stderr
    );
}
