//! `sentiq keys create|list|revoke`: API keys, on the database `DATABASE_URL` names (either
//! topology), as `migrate` reads it. The database is migrated first, so the commands work on a
//! fresh deployment too.
//!
//! `create` prints the key alone on standard output (so `KEY=$(sentiq keys create acme)`
//! works) and a line about it on standard error: the key is shown this once, only its hash is
//! kept. Every failure (a taken name, an unknown one, an unusable number, an unreachable
//! database) is a message and a non-zero exit.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config;
use crate::db::{Db, Plans, redact};
use crate::keys::{self, ApiKey, Limits, Usage};
use crate::timestamp::Timestamp;

#[derive(Args, Debug)]
pub struct KeysArgs {
    /// The database holding the keys: sqlite://... or postgres://... (what `migrate` takes)
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Make a key and print it, once: only its hash is kept
    Create {
        /// A name to tell the key by (unique; 1 to 64 characters)
        name: String,
        /// Submissions a minute for this key, shared by every web process (0: no limit;
        /// default: SUBMIT_RATE_PER_MINUTE)
        #[arg(long, value_name = "N")]
        rate_per_minute: Option<u32>,
        /// Jobs of this key running at once, across all workers (at least 1; default: no cap)
        #[arg(long, value_name = "N")]
        max_running: Option<u32>,
    },
    /// List the keys: prefix, dates, limits and their jobs by status
    List,
    /// Revoke a key: every web process refuses it from its next request on
    Revoke {
        /// The key's name
        name: String,
    },
}

/// Run a `keys` command.
pub fn run(args: KeysArgs) -> ExitCode {
    // A blank variable counts as unset, as for every other command.
    let url = args
        .database_url
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().to_owned())
        .unwrap_or_else(|| config::DATABASE_URL.default.unwrap_or_default().to_owned());
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let outcome: Result<(), String> = runtime.block_on(async move {
        let db = Db::open(&url, 2, Plans::Cached)
            .await
            .map_err(|e| format!("could not open the database {}: {e}", redact(&url)))?;
        db.migrate()
            .await
            .map_err(|e| format!("could not migrate the database: {e}"))?;
        let done = act(&db, args.action).await;
        db.close().await;
        done
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn act(db: &Db, action: KeysAction) -> Result<(), String> {
    let out = |text: String| {
        writeln!(io::stdout().lock(), "{text}").map_err(|e| format!("could not write: {e}"))
    };
    match action {
        KeysAction::Create {
            name,
            rate_per_minute,
            max_running,
        } => {
            let limits = Limits {
                rate_per_minute,
                max_running,
            };
            let created = keys::create(db, &name, limits)
                .await
                .map_err(|e| e.to_string())?;
            out(created.secret.expose().to_owned())?;
            eprintln!(
                "API key {:?} made ({}; {}). This is the only time it is shown: only its hash \
                 is kept. Send it as \"Authorization: Bearer <key>\".",
                created.key.name,
                created.key.shown_prefix(),
                created.key.limits().describe()
            );
            Ok(())
        }
        KeysAction::List => {
            let (list, usage) = tokio::join!(keys::list(db), keys::usage(db));
            let (list, usage) = (
                list.map_err(|e| e.to_string())?,
                usage.map_err(|e| e.to_string())?,
            );
            if list.is_empty() {
                eprintln!("No API keys yet: make one with `sentiq keys create NAME`.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| row(k, usage.get(&k.id).cloned().unwrap_or_default()))
                .collect();
            out(table(&rows))
        }
        KeysAction::Revoke { name } => {
            let revoked = keys::revoke(db, &name).await.map_err(|e| e.to_string())?;
            let key = &revoked.key;
            if revoked.already {
                let at = key.revoked_at.map(Timestamp::clock).unwrap_or_default();
                out(format!(
                    "API key {:?} ({}) was revoked already, at {at} UTC.",
                    key.name,
                    key.shown_prefix()
                ))
            } else {
                out(format!(
                    "API key {:?} ({}) revoked: it is refused from now on.",
                    key.name,
                    key.shown_prefix()
                ))
            }
        }
    }
}

const HEADER: [&str; 12] = [
    "NAME",
    "PREFIX",
    "CREATED (UTC)",
    "LAST USED",
    "STATE",
    "RATE/MIN",
    "MAX RUNNING",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
];

fn row(k: &ApiKey, usage: Usage) -> Vec<String> {
    let limits = k.limits();
    let or_default = |v: Option<u32>| v.map_or_else(|| "default".to_owned(), |n| n.to_string());
    vec![
        k.name.clone(),
        k.shown_prefix(),
        k.created_at.clock(),
        k.last_used_at
            .map_or_else(|| "never".to_owned(), Timestamp::relative),
        if k.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        }
        .to_owned(),
        or_default(limits.rate_per_minute),
        or_default(limits.max_running),
        usage.queued.to_string(),
        usage.running.to_string(),
        usage.succeeded.to_string(),
        usage.failed.to_string(),
        usage.cancelled.to_string(),
    ]
}

/// Columns padded to their widest cell, the header first.
fn table(rows: &[Vec<String>]) -> String {
    let header: Vec<String> = HEADER.iter().map(|h| (*h).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    all.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_every_column_to_its_widest_cell() {
        let rows = vec![
            vec!["é".to_owned(); HEADER.len()],
            vec!["long name".to_owned(); HEADER.len()],
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME       PREFIX"), "{text}");
        assert!(lines[1].starts_with("é          é"), "{text}");
    }
}
