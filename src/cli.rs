//! The `sentiq` command line.
//!
//! Offline commands work on files and need nothing else: `score` gives the reference VADER numbers
//! for each input line, `analyze` runs the same analysis a job runs and prints the report. Neither
//! prints anything to stdout unless the whole input was good, so a failed run never leaves half an
//! output behind.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Seek, Write};
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Score each input line: one JSON line {"neg","neu","pos","compound"} per line, same order,
    /// blank lines included, exactly as vaderSentiment 3.3.2 scores them.
    Score {
        /// Input file; standard input when absent or "-".
        file: Option<PathBuf>,
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
    let outcome = match cli.command {
        Command::Score { file } => score(file),
        Command::Analyze {
            file,
            format,
            column,
        } => analyze(file, format, column),
        Command::Licenses => {
            println!(
                "sentiq includes the VADER lexicons (vaderSentiment 3.3.2, C.J. Hutto):\n\n{}",
                analysis::lexicon::LICENSE
            );
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

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

/// Lines scored per parallel batch.
const SCORE_BATCH_LINES: usize = 16 * 1024;

fn score(path: Option<PathBuf>) -> Result<(), CliError> {
    let (mut file, _name) = open_input(&path)?;
    // First pass: the whole input must be UTF-8 and non-empty before anything is printed.
    let mut check = Utf8Reader::new(io::BufReader::with_capacity(1 << 20, &file));
    let checked = io::copy(&mut check, &mut io::sink()).map_err(read_error)?;
    if checked == 0 {
        return Err(AnalysisError::Empty.into());
    }
    drop(check);
    file.rewind().map_err(|source| CliError::Open {
        path: "input".into(),
        source,
    })?;

    let mut reader = Utf8Reader::new(io::BufReader::with_capacity(1 << 20, file));
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut lines: Vec<String> = Vec::with_capacity(SCORE_BATCH_LINES);
    let mut rendered: Vec<Vec<u8>> = Vec::new();
    let mut done = false;
    while !done {
        lines.clear();
        while lines.len() < SCORE_BATCH_LINES {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(read_error)? == 0 {
                done = true;
                break;
            }
            // The reference splits on "\n" and drops one trailing "\r" per line.
            if line.ends_with('\n') {
                line.pop();
                if line.ends_with('\r') {
                    line.pop();
                }
            }
            lines.push(line);
        }
        lines
            .par_iter()
            .with_min_len(512)
            .map(|l| {
                let mut buf = serde_json::to_vec(&analysis::polarity_scores(l))
                    .expect("scores always serialise");
                buf.push(b'\n');
                buf
            })
            .collect_into_vec(&mut rendered);
        for r in &rendered {
            out.write_all(r).map_err(CliError::Output)?;
        }
    }
    out.flush().map_err(CliError::Output)
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
        io::BufReader::with_capacity(1 << 20, file).take(u64::MAX),
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
