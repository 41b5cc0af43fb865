//! The `sentiq` command line.
//!
//! Offline commands work on files and need nothing else: `score` gives the reference VADER numbers
//! for each input line, `analyze` runs the same analysis a job runs and prints the report. Neither
//! prints anything to stdout unless the whole input was good, so a failed run never leaves half an
//! output behind.

use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rayon::prelude::*;

use crate::analysis::input::{Utf8Reader, read_error};
use crate::analysis::{self, AnalysisError, Format, Observer, Options};

#[derive(Parser, Debug)]
#[command(
    name = "sentiq",
    version,
    about = "Sentiment analysis off the request path"
)]
pub struct Cli {
    /// Worker threads for the analysis (default: one per core).
    #[arg(long, global = true, env = "SENTIQ_THREADS")]
    pub threads: Option<usize>,
    /// What to do; without a command, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the web app on $PORT (default 8080), with an in-process worker (embedded queue).
    Serve,
    /// Run workers only.
    Worker {
        /// Queues to consume, comma-separated (default: $WORKER_QUEUES or quick,bulk).
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<String>>,
        /// Analyses run at once per queue (default: $WORKER_CONCURRENCY or 2).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Most jobs of queue quick held at once with Redis, claimed or waiting for an
        /// analysis slot or their writes (default: $WORKER_IN_FLIGHT or 512).
        #[arg(long)]
        in_flight: Option<usize>,
    },
    /// Create the database if needed and apply the migrations.
    Migrate,
    /// Score each input line: one JSON line {"neg","neu","pos","compound"} per line, same order,
    /// blank lines included, exactly as vaderSentiment 3.3.2 scores them.
    Score {
        /// Input file; standard input when absent or "-".
        file: Option<PathBuf>,
        /// Print no scores: time the scoring of all lines on this thread, after reading them,
        /// and print `sentences=N score_s=S sentences_per_s=R` on stderr (as the Python
        /// reference tool's --bench does, for like-for-like comparisons).
        #[arg(long)]
        bench: bool,
    },
    /// Analyse a document, CSV or JSONL file as a job would; the report JSON goes to stdout.
    Analyze {
        /// Input file, or "-" for standard input.
        file: PathBuf,
        /// Input format; by default from the file name (.csv, .jsonl/.ndjson, else text).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// CSV: the column holding the text (default: text, review, body, content or comment).
        #[arg(long)]
        column: Option<String>,
    },
    /// Print the licence notices of the data built into this binary.
    Licenses,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
    {
        eprintln!("error: could not start {n} threads: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return service(Service::Serve),
        Command::Worker {
            queues,
            concurrency,
            in_flight,
        } => {
            return service(Service::Worker {
                queues,
                concurrency,
                in_flight,
            });
        }
        Command::Migrate => return service(Service::Migrate),
        Command::Score { file, bench: false } => score(file),
        Command::Score { file, bench: true } => score_bench(file),
        Command::Analyze {
            file,
            format,
            column,
        } => analyze(file, format, column),
        Command::Licenses => writeln!(
            io::stdout().lock(),
            "sentiq includes the VADER lexicons (vaderSentiment 3.3.2, C.J. Hutto):\n\n{}",
            analysis::lexicon::LICENSE
        )
        .map_err(CliError::Output),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Service {
    Serve,
    Worker {
        queues: Option<Vec<String>>,
        concurrency: Option<usize>,
        in_flight: Option<usize>,
    },
    Migrate,
}

/// The long-running commands: configuration from the environment, logs on stderr.
fn service(what: Service) -> ExitCode {
    crate::telemetry::init();
    let mut config = match crate::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async move {
        match what {
            Service::Serve => {
                let app = crate::startup::Application::build(config.clone()).await?;
                tracing::info!(
                    port = app.port(),
                    database = %redact(&config.database_url),
                    queue = %config.redis_url.as_deref().map_or("embedded (SQLite)".to_owned(), redact),
                    worker = config.run_worker && config.redis_url.is_none(),
                    "sentiq listening on http://localhost:{}",
                    app.port()
                );
                app.run_until_stopped().await?;
            }
            Service::Worker {
                queues,
                concurrency,
                in_flight,
            } => {
                if let Some(queues) = queues {
                    config.queues = crate::config::parse_queues(&queues.join(","))?;
                }
                if let Some(n) = concurrency {
                    config.worker_concurrency = n.max(1);
                }
                if let Some(n) = in_flight {
                    config.worker_in_flight = n.max(1);
                }
                crate::startup::run_worker(config).await?;
            }
            Service::Migrate => {
                let db = crate::db::Db::open(&config.database_url, 2, crate::db::Plans::Cached).await?;
                db.migrate().await?;
                db.close().await;
                tracing::info!(database = %redact(&config.database_url), "migrations applied");
            }
        }
        Ok(())
    });
    // Analyses handed back at shutdown stop at their next chunk; do not wait for more.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

use crate::db::redact;

/// A command's failure, printed as `error: ...`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("{0}")]
    Analysis(#[from] AnalysisError),
    #[error("could not write the output: {0}")]
    Output(io::Error),
}

fn is_stdin(path: &Option<PathBuf>) -> bool {
    path.as_ref().is_none_or(|p| p.as_os_str() == "-")
}

/// A seekable copy of the input: the file itself, or standard input spooled to a temporary file,
/// so the input can be checked in full before any output is written.
fn open_input(path: &Option<PathBuf>) -> Result<(File, String), CliError> {
    if is_stdin(path) {
        let mut spool = tempfile::tempfile().map_err(|source| CliError::Open {
            path: "temporary file".into(),
            source,
        })?;
        io::copy(&mut io::stdin().lock(), &mut spool).map_err(|source| CliError::Open {
            path: "standard input".into(),
            source,
        })?;
        spool.rewind().map_err(|source| CliError::Open {
            path: "temporary file".into(),
            source,
        })?;
        return Ok((spool, "standard input".into()));
    }
    let p = path.as_ref().expect("not stdin");
    let name = p.display().to_string();
    let file = File::open(p).map_err(|source| CliError::Open {
        path: name.clone(),
        source,
    })?;
    Ok((file, name))
}

/// Input read per parallel batch of `score` (whole lines, so a batch can be larger).
const SCORE_BLOCK_BYTES: usize = 2 << 20;

fn score(path: Option<PathBuf>) -> Result<(), CliError> {
    let (mut file, _name) = open_input(&path)?;
    // First pass: the whole input must be UTF-8 and non-empty before anything is printed.
    let mut check = Utf8Reader::new(&file);
    let mut checked = 0u64;
    loop {
        let n = check.fill_buf().map_err(read_error)?.len();
        if n == 0 {
            break;
        }
        check.consume(n);
        checked += n as u64;
    }
    drop(check);
    if checked == 0 {
        return Err(AnalysisError::Empty.into());
    }
    // Second pass: the input was checked, so plain reads will do (each block is still turned into
    // text with a check, in case the file changed in between). Skip a byte-order mark as the
    // check did.
    let reopen = |source| CliError::Open {
        path: "input".into(),
        source,
    };
    file.rewind().map_err(reopen)?;
    let mut head = [0u8; 3];
    let bom = file.read_exact(&mut head).is_ok() && head == *b"\xEF\xBB\xBF";
    file.seek(io::SeekFrom::Start(if bom { 3 } else { 0 }))
        .map_err(reopen)?;
    let mut reader = file;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut block: Vec<u8> = Vec::with_capacity(2 * SCORE_BLOCK_BYTES);
    let mut eof = false;
    while !eof {
        // Read whole lines: at least one block, up to and including the last line feed.
        let searched_from = block.len();
        loop {
            let before = block.len();
            (&mut reader)
                .take(SCORE_BLOCK_BYTES as u64)
                .read_to_end(&mut block)
                .map_err(read_error)?;
            if block.len() == before {
                eof = true;
                break;
            }
            if memchr::memrchr(b'\n', &block[searched_from.min(before)..]).is_some()
                && block.len() >= SCORE_BLOCK_BYTES
            {
                break;
            }
        }
        let cut = if eof {
            block.len()
        } else {
            memchr::memrchr(b'\n', &block).map_or(block.len(), |p| p + 1)
        };
        let rest = block.split_off(cut);
        if !block.is_empty() {
            let text = std::str::from_utf8(&block).map_err(|_| {
                AnalysisError::Internal("the input changed while it was being read".into())
            })?;
            write_block_scores(text, &mut out)?;
        }
        block = rest;
    }
    out.flush().map_err(CliError::Output)
}

/// Score the lines of `text` (whole lines, the last one's "\n" optional) on all threads.
fn write_block_scores(text: &str, out: &mut impl Write) -> Result<(), CliError> {
    let lines = reference_lines(text);
    let rendered: Vec<Vec<u8>> = lines
        .par_chunks(1024)
        .map(|chunk| {
            let mut buf = Vec::with_capacity(chunk.len() * 64);
            for line in chunk {
                write_scores(&mut buf, &analysis::polarity_scores(line));
            }
            buf
        })
        .collect();
    for r in &rendered {
        out.write_all(r).map_err(CliError::Output)?;
    }
    Ok(())
}

/// The lines of `text` as the reference tool reads them: split on "\n" (a final "\n" makes no
/// extra line), one trailing "\r" per line dropped.
fn reference_lines(text: &str) -> Vec<&str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines: Vec<&str> = Vec::with_capacity(body.len() / 32);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body.as_bytes()).chain([body.len()]) {
        let line = &body[start..end];
        lines.push(line.strip_suffix('\r').unwrap_or(line));
        start = end + 1;
    }
    lines
}

/// `score --bench`: read and split the whole input first, then time only the scoring loop.
fn score_bench(path: Option<PathBuf>) -> Result<(), CliError> {
    let (file, _name) = open_input(&path)?;
    let mut text = String::new();
    Utf8Reader::new(file)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    let lines = reference_lines(&text);
    let mut scorer = analysis::Scorer::new();
    scorer.score("warm up: load the lexicon before the clock starts");
    let started = std::time::Instant::now();
    for line in &lines {
        std::hint::black_box(scorer.score(std::hint::black_box(line)));
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "sentences={} score_s={seconds:.3} sentences_per_s={:.1}",
        lines.len(),
        lines.len() as f64 / seconds
    );
    Ok(())
}

/// One JSON line of scores. Scores carry at most 4 decimals, so the shortest text that reads back
/// as the same number (what Python's json module prints) is the decimal itself.
pub fn write_scores(buf: &mut Vec<u8>, s: &analysis::Scores) {
    buf.extend_from_slice(b"{\"neg\":");
    write_decimal(buf, s.neg);
    buf.extend_from_slice(b",\"neu\":");
    write_decimal(buf, s.neu);
    buf.extend_from_slice(b",\"pos\":");
    write_decimal(buf, s.pos);
    buf.extend_from_slice(b",\"compound\":");
    write_decimal(buf, s.compound);
    buf.extend_from_slice(b"}\n");
}

/// Write a number with at most 4 decimals as Python's `repr` would: "0.0", "-0.4939", "0.12".
fn write_decimal(buf: &mut Vec<u8>, v: f64) {
    let ticks = (v.abs() * 10_000.0).round() as u64;
    if v.is_sign_negative() {
        buf.push(b'-');
    }
    let whole = ticks / 10_000;
    if whole >= 10 {
        // Never for scores (|v| <= 1); kept correct anyway.
        buf.extend_from_slice(whole.to_string().as_bytes());
    } else {
        buf.push(b'0' + whole as u8);
    }
    buf.push(b'.');
    let frac = ticks % 10_000;
    let digits = [frac / 1000, frac / 100 % 10, frac / 10 % 10, frac % 10];
    let keep = digits.iter().rposition(|&d| d != 0).map_or(1, |p| p + 1);
    buf.extend(digits[..keep].iter().map(|&d| b'0' + d as u8));
}

/// Progress bar on stderr, only when stderr is a terminal.
struct CliObserver {
    bar: Option<indicatif::ProgressBar>,
}

impl Observer for CliObserver {
    fn progress(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}

fn analyze(path: PathBuf, format: Option<Format>, column: Option<String>) -> Result<(), CliError> {
    let path = Some(path);
    let (file, name) = open_input(&path)?;
    let format = format.unwrap_or_else(|| Format::from_file_name(&name));
    let total = file.metadata().ok().map(|m| m.len());
    let bar = io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        );
        bar
    });
    let mut observer = CliObserver { bar };
    let options = Options {
        format,
        column,
        total_bytes: total,
    };
    let result = analysis::analyze(
        io::BufReader::with_capacity(1 << 20, file),
        &options,
        &mut observer,
    );
    if let Some(bar) = &observer.bar {
        bar.finish_and_clear();
    }
    let report = result?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, &report).map_err(|e| CliError::Output(e.into()))?;
    writeln!(out).map_err(CliError::Output)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_the_shortest_round_trip_text() {
        for k in -10_000i64..=10_000 {
            let v = k as f64 / 10_000.0;
            let mut ours = Vec::new();
            write_decimal(&mut ours, v);
            let reference = serde_json::to_string(&v).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), reference, "{k}");
        }
        let mut zero = Vec::new();
        write_decimal(&mut zero, -0.0);
        assert_eq!(zero, b"-0.0");
    }
}
