//! The `community` binary. `cargo run -p local` serves the whole API on one
//! machine (`community` or `community serve`); the other subcommands are the
//! marketing and operations CLI:
//! - `token --sub alice --email alice@example.com [--groups committee]`
//!   prints a token the local server accepts;
//! - `campaigns validate [DIR]`, `campaigns apply [DIR] --target local|aws
//!   [--dry-run]` (see docs/marketing.md);
//! - `invites create --cohort NAME --count N --target local|aws`;
//! - `ambassadors run --target local|aws` (the daily scoring, now);
//! - `search reindex --target local|aws` (the word index of listed ideas);
//! - `launch public|soft --target local|aws [--dry-run]` (the hard launch);
//! - `verify-draw FILE`.
//!
//! A new command: a variant of `Command` (or of a nested enum) and its arm in
//! `run`, with the work in `cli.rs` (or its own module) over the shared crate;
//! `cli::TargetArgs` opens the local store or the DynamoDB table.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use community::config::Settings;
use community::store::embedded::EmbeddedTable;
use community::App;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "community",
    about = "The community API on one machine (the default), and the marketing and operations CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route (the default).
    Serve,
    /// Print a bearer token signed with COMMUNITY_LOCAL_JWT_SECRET.
    Token {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        email: Option<String>,
        /// Comma-separated groups: committee, moderator, marketing.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
    /// Campaign files (community.toml, points.toml, contests, product tests):
    /// validate, then apply to the local store or the table on AWS.
    Campaigns {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Recompute a contest draw or tester selection from its published
    /// response (a file, or standard input): exits 0 when it checks out.
    VerifyDraw {
        /// The JSON response of POST /contests/{id}/draw (or of a selection,
        /// or GET of the contest or product test).
        file: Option<PathBuf>,
        /// The entry list, when the proof does not hold it: a JSON array of
        /// pseudonyms, the page responses of `entries_path` (one JSON
        /// object, an array of them, or one per line), or one pseudonym per line.
        #[arg(long)]
        entries: Option<PathBuf>,
        /// Fetch the entry pages from this server (http://…): its
        /// `entries_path` route, following `next_cursor`.
        #[arg(long)]
        server: Option<String>,
    },
    /// Soft-launch invite codes, by cohort.
    Invites {
        #[command(subcommand)]
        command: InviteCommand,
    },
    /// The ambassadors' engagement scoring (daily on AWS).
    Ambassadors {
        #[command(subcommand)]
        command: AmbassadorCommand,
    },
    /// The word index of `GET /ideas?q=` (operations).
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// The event pipeline (operations).
    Events {
        #[command(subcommand)]
        command: EventCommand,
    },
    /// Switch the launch mode: `launch public` opens the community to all
    /// (sign-up without an invite code, reads without a token); `launch
    /// soft` closes it to invited members again. Every function takes it
    /// within 30 s, without a redeploy.
    Launch {
        /// public or soft.
        #[arg(value_enum)]
        mode: cli::Mode,
        #[command(flatten)]
        target: cli::TargetArgs,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Write the word postings of every listed idea (ideas posted before
    /// the index existed); idempotent, run it again at will.
    Reindex {
        /// The campaigns directory (its themes; default infra/campaigns).
        #[arg(long)]
        campaigns: Option<PathBuf>,
        #[command(flatten)]
        target: cli::TargetArgs,
    },
}

#[derive(Subcommand)]
enum EventCommand {
    /// Send the outbox events written in a time range to their queues again
    /// (after the relay's failure queue reported a batch, or a queue was
    /// purged). Consumers are idempotent: events already applied change
    /// nothing. Outbox items live a week on AWS.
    Replay {
        /// Start of the range, RFC 3339 (e.g. 2026-12-04T20:00:00Z).
        #[arg(long)]
        from: String,
        /// End of the range, RFC 3339, inclusive.
        #[arg(long)]
        to: String,
        /// Only this queue: points, emails, insights or loyalty.
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        target: cli::TargetArgs,
    },
}

#[derive(Subcommand)]
enum AmbassadorCommand {
    /// Score every active member now and flag the top ones.
    Run {
        /// The campaigns directory whose community.toml has `[ambassadors]`
        /// (default infra/campaigns).
        #[arg(long)]
        campaigns: Option<PathBuf>,
        #[command(flatten)]
        target: cli::TargetArgs,
    },
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Validate every campaign file under DIR (default infra/campaigns):
    /// every problem names its file and field.
    Validate { dir: Option<PathBuf> },
    /// Show what changes against the table, then upsert the new and changed
    /// campaigns (entries, seeds, draws and selections are never touched).
    Apply {
        /// The campaigns directory (default infra/campaigns).
        dir: Option<PathBuf>,
        #[command(flatten)]
        target: cli::TargetArgs,
        /// Show the diff only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Create invite codes for a cohort and print them, one per line.
    Create {
        #[arg(long)]
        cohort: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Members each code admits.
        #[arg(long, default_value_t = 1)]
        max_uses: i64,
        #[command(flatten)]
        target: cli::TargetArgs,
    },
}

fn secret() -> String {
    std::env::var("COMMUNITY_LOCAL_JWT_SECRET")
        .unwrap_or_else(|_| local::auth::DEFAULT_SECRET.into())
}

fn data_dir() -> PathBuf {
    std::env::var_os("COMMUNITY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".community"))
}

fn campaigns_dir() -> Option<PathBuf> {
    Settings::campaigns_dir_from_env().or_else(|| {
        let d = Path::new("infra/campaigns");
        d.join(community::config::CAMPAIGN_FILE)
            .exists()
            .then(|| d.to_path_buf())
    })
}

fn open_store() -> anyhow::Result<EmbeddedTable> {
    cli::open_local(&data_dir())
}

fn default_campaigns(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from("infra/campaigns"))
}

/// Errors are printed once, in plain words (no Debug output, no backtrace).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token {
            sub,
            email,
            groups,
            ttl,
        } => {
            println!(
                "{}",
                local::auth::sign(&secret(), &sub, email.as_deref(), &groups, ttl)?
            );
            Ok(())
        }
        Command::Invites {
            command:
                InviteCommand::Create {
                    cohort,
                    count,
                    max_uses,
                    target,
                },
        } => cli::invites_create_cmd(&target, &cohort, count, max_uses).await,
        Command::Ambassadors {
            command: AmbassadorCommand::Run { campaigns, target },
        } => cli::ambassadors_run_cmd(&target, &default_campaigns(campaigns)).await,
        Command::Search {
            command: SearchCommand::Reindex { campaigns, target },
        } => cli::search_reindex_cmd(&target, &default_campaigns(campaigns)).await,
        Command::Events {
            command:
                EventCommand::Replay {
                    from,
                    to,
                    queue,
                    target,
                },
        } => cli::replay_cmd(&target, &from, &to, queue.as_deref()).await,
        Command::Serve => serve().await,
        Command::Launch {
            mode,
            target,
            dry_run,
        } => cli::launch_cmd(mode, &target, dry_run).await,
        Command::Campaigns {
            command: CampaignCommand::Validate { dir },
        } => cli::validate_cmd(&default_campaigns(dir)),
        Command::Campaigns {
            command:
                CampaignCommand::Apply {
                    dir,
                    target,
                    dry_run,
                },
        } => cli::apply_cmd(&default_campaigns(dir), &target, dry_run).await,
        Command::VerifyDraw {
            file,
            entries,
            server,
        } => cli::verify_draw_cmd(file.as_deref(), entries.as_deref(), server.as_deref()).await,
    }
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COMMUNITY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let dir = campaigns_dir();
    let mut settings = Settings::load(dir.as_deref())?;
    let table = open_store()?;
    let addr = std::env::var("COMMUNITY_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set COMMUNITY_ADDR)"))?;
    let bound = listener.local_addr()?;
    if std::env::var("COMMUNITY_PUBLIC_URL").is_err() {
        settings.public_url = format!("http://{bound}");
    }
    if let Some(d) = &dir {
        let campaigns = community::campaigns::load_dir(d).map_err(|errs| {
            anyhow::anyhow!(
                "invalid campaign files:\n{}",
                errs.iter()
                    .map(|e| format!("  {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        let applied = community::campaigns::apply(&table, &campaigns).await?;
        tracing::info!(campaigns = applied.len(), "campaigns applied");
    }
    let meter = table.meter();
    // Settings as on AWS: the campaign applied to the store (just now, from
    // the directory), read at run time; this server's environment
    // (COMMUNITY_INVITE_ONLY, COMMUNITY_VOTE_THRESHOLD) over it.
    let overrides = community::live::Overrides::from_env(|k| std::env::var(k).ok())?;
    let app = App::from_table(table, settings, overrides, community::live::TTL);
    app.refresh()
        .await
        .context("cannot read the applied campaign")?;
    let invite_only = app.settings().invite_only;
    let node = local::Local::new(app, &data_dir())?.metered(meter);
    node.pipeline.clone().spawn();
    node.spawn_scheduled(local::schedule::period().map_err(anyhow::Error::msg)?);
    let router = node.router(local::auth::Verifier::new(&secret()));
    println!("Community API listening on http://{bound}");
    println!("  API docs: http://{bound}/docs   OpenAPI: http://{bound}/openapi.json");
    println!("  mails sent: http://{bound}/local/mailbox   dead letters: http://{bound}/local/dead-letters");
    println!(
        "  data: {}   campaigns: {}   launch: {}",
        data_dir().display(),
        dir.map(|d| d.display().to_string())
            .unwrap_or_else(|| "built-in".into()),
        if invite_only {
            "soft launch (invite only)"
        } else {
            "public"
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
