//! The `sentiq` command line.
//!
//! Service commands (`serve`, the default; `worker`; `migrate`) are configured by environment
//! variables, each of which an option of the same meaning can replace (see [`ServiceArgs`]).
//! `keys` manages API keys in the same database (`DATABASE_URL`).
//!
//! Offline commands work on files and need nothing else: `score` gives the reference VADER numbers
//! for each input line, `analyze` runs the same analysis a job runs and prints the report. Neither
//! prints anything to stdout unless the whole input was good, so a failed run never leaves half an
//! output behind.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Parser, Subcommand};
use rayon::prelude::*;

mod keys;

use crate::analysis::input::{Fields, Utf8Reader, read_error};
use crate::analysis::{self, AnalysisError, Format, Observer, Options};
use crate::config::{self, Config};

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
    Serve(ServiceArgs),
    /// Run workers only.
    Worker(ServiceArgs),
    /// Create the database if needed and apply the migrations.
    Migrate(ServiceArgs),
    /// Make, list and revoke the API keys of the JSON API (in the database DATABASE_URL names).
    Keys(keys::KeysArgs),
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
        /// CSV: the column holding the text (default: text, review, body, content or comment);
        /// JSONL: the key (default: text).
        #[arg(long)]
        column: Option<String>,
        /// The column (or JSONL key) naming each item (default: id, uuid, or a name ending
        /// in _id).
        #[arg(long)]
        id_column: Option<String>,
        /// Group the results by this column (or JSONL key); a column of dates gives a time
        /// series.
        #[arg(long)]
        group_by: Option<String>,
        /// The period of a time series: day, week or month (default: chosen from the span).
        #[arg(long, requires = "group_by")]
        group_by_period: Option<analysis::groups::Period>,
        /// The column (or JSONL key) of the rows' own ratings (default: rating, stars or score).
        #[arg(long)]
        rating_column: Option<String>,
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
    // Without a command, `serve` as the environment says (options need the command's name).
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServiceArgs::default()));
    let outcome = match command {
        Command::Serve(args) => return service(Service::Serve, &args),
        Command::Worker(args) => return service(Service::Worker, &args),
        Command::Migrate(args) => return service(Service::Migrate, &args),
        Command::Keys(args) => return keys::run(args),
        Command::Score { file, bench: false } => score(file),
        Command::Score { file, bench: true } => score_bench(file),
        Command::Analyze {
            file,
            format,
            column,
            id_column,
            group_by,
            group_by_period,
            rating_column,
        } => analyze(
            file,
            format,
            Fields {
                text: column,
                id: id_column,
                group_by,
                group_by_period,
                rating: rating_column,
            },
        ),
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
    Worker,
    Migrate,
}

/// The options of `serve`, `worker` and `migrate`: one per variable of [`config::SECTIONS`],
/// under its section's heading, each showing its variable and default in `--help`.
///
/// Only the options given on the command line are kept: clap's reading of the variables serves
/// `--help`, while the values are left to [`Config::from_lookup`], whose rules (trimming, blank
/// means unset, lenient yes/no, errors naming the variable) clap's parsers do not follow.
#[derive(Clone, Debug, Default)]
pub struct ServiceArgs {
    options: BTreeMap<&'static str, String>,
}

impl ServiceArgs {
    /// The configuration: each option given, else its variable as `env` answers it. An unusable
    /// option is named as the user wrote it.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        Config::from_lookup(|name| self.options.get(name).cloned().or_else(|| env(name))).map_err(
            |e| match config::vars().find(|v| v.name == e.name) {
                Some(var) if self.options.contains_key(e.name) => {
                    format!("option --{}={:?}: {}", var.flag, e.value, e.reason)
                }
                _ => e.to_string(),
            },
        )
    }
}

/// The option standing in for `var`. Values stay text (see [`ServiceArgs`]); the variables'
/// values are hidden from `--help`, as some hold passwords.
fn option(var: &'static config::Var) -> Arg {
    let arg = Arg::new(var.name)
        .long(var.flag)
        .env(var.name)
        .hide_env_values(true)
        .value_name(var.value_name)
        .help(var.help)
        .value_parser(clap::value_parser!(OsString));
    let arg = match var.default {
        Some(text) => arg.default_value(text),
        None => arg,
    };
    if var.name == config::WORKER_QUEUES.name {
        // `--queues quick --queues bulk` as well as `--queues quick,bulk`, as before.
        arg.value_delimiter(',').action(ArgAction::Append)
    } else {
        arg
    }
}

impl clap::Args for ServiceArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        config::SECTIONS
            .iter()
            .fold(cmd, |cmd, section| {
                let cmd = cmd.next_help_heading(section.heading);
                section
                    .vars
                    .iter()
                    .fold(cmd, |cmd, var| cmd.arg(option(var)))
            })
            .next_help_heading(None::<&str>)
            .after_help(config::VALUE_NOTES)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ServiceArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ServiceArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for var in config::vars() {
            if matches.value_source(var.name) != Some(ValueSource::CommandLine) {
                continue;
            }
            let values: Vec<String> = matches
                .get_many::<OsString>(var.name)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            self.options.insert(var.name, values.join(","));
        }
        Ok(())
    }
}

/// The long-running commands: configuration from the options and the environment, logs on
/// stderr.
fn service(what: Service, args: &ServiceArgs) -> ExitCode {
    crate::telemetry::init();
    let config = match args.config(|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let outcome: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async move {
        match what {
            Service::Serve => {
                let app = crate::startup::Application::build(config.clone()).await?;
                tracing::info!(
                    port = app.port(),
                    database = %redact(&config.database.url),
                    queue = %config.queue.redis_url.as_deref().map_or("embedded (SQLite)".to_owned(), redact),
                    worker = config.worker.run_in_process && config.queue.redis_url.is_none(),
                    "sentiq listening on http://localhost:{}",
                    app.port()
                );
                app.run_until_stopped().await?;
            }
            Service::Worker => crate::startup::run_worker(config).await?,
            Service::Migrate => {
                let db = crate::db::Db::open(&config.database.url, 2, crate::db::Plans::Cached).await?;
                db.migrate().await?;
                db.close().await;
                tracing::info!(database = %redact(&config.database.url), "migrations applied");
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

/// The tokio runtime of a command that needs one; else the message and the exit code.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: could not start the runtime: {e}");
            ExitCode::FAILURE
        })
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

fn analyze(path: PathBuf, format: Option<Format>, fields: Fields) -> Result<(), CliError> {
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
        fields,
        total_bytes: total,
        languages: true,
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
    use clap::CommandFactory;

    use super::*;

    /// What `sentiq <command> --help` prints.
    fn help(command: &str) -> String {
        let shown = Cli::try_parse_from(["sentiq", command, "--help"]).unwrap_err();
        assert_eq!(shown.kind(), clap::error::ErrorKind::DisplayHelp);
        shown.render().to_string()
    }

    fn service_args(argv: &[&str]) -> ServiceArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Serve(args) | Command::Worker(args) | Command::Migrate(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn service_help_lists_every_variable_with_its_option_and_default() {
        let readme = crate::config::tests::readme_rows();
        for command in ["serve", "worker", "migrate"] {
            let help = help(command);
            for var in config::vars() {
                let option = format!("--{} <{}>", var.flag, var.value_name);
                assert!(
                    help.contains(&option),
                    "{command} --help lacks {option}:\n{help}"
                );
                let shown = match var.default {
                    Some(d) => format!("[env: {}] [default: {d}]", var.name),
                    None => format!("[env: {}]\n", var.name),
                };
                assert!(
                    help.contains(&shown),
                    "{command} --help lacks {shown}:\n{help}"
                );
            }
            for (name, _) in &readme {
                assert!(
                    help.contains(name.as_str()),
                    "{command} --help never names {name}"
                );
            }
        }
    }

    #[test]
    fn offline_commands_take_no_service_options() {
        let cli = Cli::command();
        for command in ["score", "analyze", "licenses"] {
            let sub = cli.find_subcommand(command).unwrap();
            let envs: Vec<_> = sub.get_arguments().filter_map(Arg::get_env).collect();
            assert!(envs.is_empty(), "{command} reads {envs:?}");
        }
        assert!(Cli::try_parse_from(["sentiq", "licenses", "--port", "1"]).is_err());
    }

    #[test]
    fn options_win_over_their_variables_and_the_rest_comes_from_the_environment() {
        let args = service_args(&[
            "sentiq",
            "worker",
            "--queues",
            "bulk",
            "--queues",
            "quick",
            "--concurrency",
            "0",
            "--port=9",
        ]);
        let env = |name: &str| match name {
            "WORKER_QUEUES" => Some("slow".to_owned()),
            "PORT" => Some("1".to_owned()),
            "HOST" => Some("127.0.0.9".to_owned()),
            _ => None,
        };
        let c = args.config(env).unwrap();
        assert_eq!(
            c.worker.queues,
            [
                crate::jobs::queue::QueueName::Bulk,
                crate::jobs::queue::QueueName::Quick
            ]
        );
        assert_eq!(c.worker.concurrency, 1);
        assert_eq!(c.http.port, 9);
        assert_eq!(c.http.host, "127.0.0.9");
        let c = service_args(&["sentiq", "worker", "--queues", "bulk,quick"])
            .config(|_| None)
            .unwrap();
        assert_eq!(
            c.worker.queues,
            [
                crate::jobs::queue::QueueName::Bulk,
                crate::jobs::queue::QueueName::Quick
            ]
        );
    }

    #[test]
    fn an_unusable_value_is_named_as_the_user_gave_it() {
        let args = service_args(&["sentiq", "serve", "--port", "lots"]);
        assert_eq!(
            args.config(|_| None).unwrap_err(),
            "option --port=\"lots\": invalid digit found in string"
        );
        let from_env = service_args(&["sentiq", "serve"])
            .config(|name| (name == "PORT").then(|| "lots".to_owned()))
            .unwrap_err();
        assert_eq!(
            from_env,
            "environment variable PORT=\"lots\": invalid digit found in string"
        );
    }

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
