//! The operations commands of the `community` CLI (campaigns, invites): thin
//! wrappers over `community::campaigns` and `community::members`, run
//! against the local store or the DynamoDB table on AWS.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use community::live::LaunchMode;
use community::store::dynamo::DynamoTable;
use community::store::embedded::{self, EmbeddedTable};
use community::store::{Item, Table};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The local server's embedded store (in --data-dir; stop the server first).
    Local,
    /// The DynamoDB table on AWS (--table or TABLE_NAME; credentials, region
    /// and AWS_ENDPOINT_URL from the environment).
    Aws,
}

/// A launch mode, as the `launch` command takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Open to all: sign-up without an invite code, reads without a token.
    Public,
    /// Invited members only: sign-up needs an invite code, every read a
    /// member's token.
    Soft,
}

impl From<Mode> for LaunchMode {
    fn from(m: Mode) -> LaunchMode {
        match m {
            Mode::Public => LaunchMode::Public,
            Mode::Soft => LaunchMode::Soft,
        }
    }
}

/// Where a command reads and writes: reusable by any command that touches
/// the table.
#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// The store to write to.
    #[arg(long, value_enum, default_value = "local")]
    pub target: Target,
    /// The DynamoDB table (--target aws), as the functions' TABLE_NAME.
    #[arg(long, env = "TABLE_NAME")]
    pub table: Option<String>,
    /// The local server's data directory (--target local).
    #[arg(long, env = "COMMUNITY_DATA_DIR", default_value = ".community")]
    pub data_dir: PathBuf,
}

impl TargetArgs {
    /// A human name of the target, for output.
    pub fn describe(&self) -> String {
        match self.target {
            Target::Local => format!("the local store in {}", self.data_dir.display()),
            Target::Aws => format!(
                "the DynamoDB table {}",
                self.table.as_deref().unwrap_or("(none)")
            ),
        }
    }

    /// Opens the target's table.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Table>> {
        match self.target {
            Target::Local => Ok(Arc::new(open_local(&self.data_dir)?)),
            Target::Aws => {
                let Some(name) = self.table.as_deref().filter(|t| !t.is_empty()) else {
                    bail!("--target aws needs the table: --table NAME (or TABLE_NAME)");
                };
                let aws = aws_config::load_from_env().await;
                if aws.region().is_none() {
                    bail!("--target aws needs a region: set AWS_REGION (or AWS_DEFAULT_REGION)");
                }
                let client = aws_sdk_dynamodb::Client::new(&aws);
                client
                    .describe_table()
                    .table_name(name)
                    .send()
                    .await
                    .map_err(|e| match e.as_service_error() {
                        Some(se) if se.is_resource_not_found_exception() => anyhow::anyhow!(
                            "the DynamoDB table {name} does not exist (region {})",
                            aws.region().map(|r| r.to_string()).unwrap_or_default()
                        ),
                        Some(se) => anyhow::anyhow!(
                            "cannot read the DynamoDB table {name}: {}",
                            se.meta().message().or(se.meta().code()).unwrap_or("error")
                        ),
                        None => anyhow::anyhow!(
                            "cannot reach DynamoDB for the table {name}: {}",
                            chain(&e)
                        ),
                    })?;
                Ok(Arc::new(DynamoTable::new(client, name)))
            }
        }
    }

    /// Whether a local store exists yet (a dry run does not create one).
    fn local_store_missing(&self) -> bool {
        self.target == Target::Local && !self.data_dir.join(embedded::FILE).exists()
    }
}

/// An error and its causes, in words (no Debug output).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Opens the local store, saying clearly when a running server holds it.
pub fn open_local(dir: &Path) -> anyhow::Result<EmbeddedTable> {
    let rules = community::store::capacity::Rules::from_env().map_err(anyhow::Error::msg)?;
    EmbeddedTable::open_with(dir, rules).map_err(|e| {
        if embedded::is_locked(&e) {
            anyhow::anyhow!(
                "the local store in {} is locked by a running local server: stop the server (Ctrl-C), run this command, then start the server again",
                dir.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot open the local store in {}", dir.display()))
        }
    })
}

/// `campaigns validate [DIR]`: every problem on its own line (standard
/// error), then a failure; or a one-line summary.
pub fn validate(dir: &Path) -> anyhow::Result<community::campaigns::Campaigns> {
    match community::campaigns::load_dir(dir) {
        Ok(c) => Ok(c),
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            bail!(
                "{} problem(s) in the campaign files under {}",
                errs.len(),
                dir.display()
            )
        }
    }
}

pub fn validate_cmd(dir: &Path) -> anyhow::Result<()> {
    let c = validate(dir)?;
    println!(
        "{}: {} contest(s), {} product test(s), {} challenge(s), {} event(s), {} survey(s), all valid",
        dir.display(),
        c.contests.len(),
        c.product_tests.len(),
        c.challenges.len(),
        c.events.len(),
        c.surveys.len()
    );
    Ok(())
}

/// `campaigns apply [DIR] --target local|aws [--dry-run]`: validates, prints
/// the diff against the table, then upserts the new and changed campaigns.
pub async fn apply_cmd(dir: &Path, target: &TargetArgs, dry_run: bool) -> anyhow::Result<()> {
    let c = validate(dir)?;
    let (table, current): (Option<Arc<dyn Table>>, Vec<Item>) =
        if dry_run && target.local_store_missing() {
            (None, Vec::new())
        } else {
            let t = target.open().await?;
            let cur = community::campaigns::current(&t)
                .await
                .context("cannot read the current campaigns")?;
            (Some(t), cur)
        };
    let plan = community::campaigns::plan(&current, &c);
    println!("{} → {}", dir.display(), target.describe());
    for l in plan.lines() {
        println!("{l}");
    }
    let todo = plan.to_apply().len();
    let new = plan
        .items
        .iter()
        .filter(|p| p.change == community::campaigns::Change::New)
        .count();
    println!(
        "{todo} to apply ({new} new, {} changed), {} unchanged",
        todo - new,
        plan.items.len() - todo
    );
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let Some(table) = table else {
        bail!("no table opened");
    };
    if todo == 0 {
        println!("nothing to apply");
        return Ok(());
    }
    let n = community::campaigns::apply_plan(&table, &c, &plan, |i, n, p| {
        println!("[{i}/{n}] {} {} applied", p.kind, p.id);
    })
    .await
    .context("applying stopped; re-run the command to finish (applying is idempotent)")?;
    println!("done: {n} campaign(s) applied to {}", target.describe());
    Ok(())
}

/// `invites create`: creates the codes and prints them, one per line.
pub async fn invites_create_cmd(
    target: &TargetArgs,
    cohort: &str,
    count: usize,
    max_uses: i64,
) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--count: must be at least 1");
    }
    let table = target.open().await?;
    let codes = community::members::create_invites(&table, cohort, count, max_uses)
        .await
        .map_err(|e| match e {
            community::error::Error::Invalid(fields) => anyhow::anyhow!(
                "{}",
                fields
                    .iter()
                    .map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow::Error::new(other).context("cannot create the invites"),
        })?;
    for c in codes {
        println!("{c}");
    }
    Ok(())
}

/// `ambassadors run [--campaigns DIR] --target local|aws`: the scheduled
/// scoring run, now (weights and levels from the campaign's `[ambassadors]`).
pub async fn ambassadors_run_cmd(target: &TargetArgs, campaigns: &Path) -> anyhow::Result<()> {
    let settings = community::config::Settings::load(Some(campaigns))
        .with_context(|| format!("cannot load the campaign from {}", campaigns.display()))?;
    let table = target.open().await?;
    let app = community::App::new(table, settings);
    let r = community::ambassadors::run(&app)
        .await
        .context("the ambassadors' run failed")?;
    println!(
        "{} member(s) scored, {} ambassador(s): {} newly flagged, {} unflagged, {} level change(s), {} item(s) written",
        r.scored, r.ambassadors, r.flagged, r.unflagged, r.level_changed, r.writes
    );
    Ok(())
}

/// `search reindex [--campaigns DIR] --target local|aws`: the word postings
/// of every listed idea (`community::search::reindex`).
pub async fn search_reindex_cmd(target: &TargetArgs, campaigns: &Path) -> anyhow::Result<()> {
    let settings = community::config::Settings::load(Some(campaigns))
        .with_context(|| format!("cannot load the campaign from {}", campaigns.display()))?;
    let table = target.open().await?;
    let app = community::App::new(table, settings);
    let r = community::search::reindex(&app)
        .await
        .context("the reindex failed")?;
    println!(
        "{} idea(s) indexed, {} posting(s) written on {}",
        r.ideas,
        r.postings,
        target.describe()
    );
    Ok(())
}

/// `verify-draw [FILE] [--entries FILE | --server URL]`: recomputes a draw
/// from its proof; the entry list is inline (`proof.entries`, the shape
/// before paging), in `--entries`, or fetched page by page from `--server`.
pub async fn verify_draw_cmd(
    file: Option<&Path>,
    entries: Option<&Path>,
    server: Option<&str>,
) -> anyhow::Result<()> {
    use serde_json::Value;
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        None => std::io::read_to_string(std::io::stdin())?,
    };
    let v: Value = serde_json::from_str(&text).context("not JSON")?;
    let proof_json = [&v["proof"], &v["draw"]["proof"], &v["selection"]["proof"]]
        .into_iter()
        .find(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| v.clone());
    let (count, winners) = if proof_json.get("entries").is_some() {
        let proof: community::draw::Proof =
            serde_json::from_value(proof_json).context("no draw proof in this JSON")?;
        community::draw::verify(&proof)
            .map_err(|e| anyhow::anyhow!("the draw does NOT check out: {e}"))?;
        (proof.entries.len(), proof.winners)
    } else {
        let s: community::draw::Summary =
            serde_json::from_value(proof_json).context("no draw proof in this JSON")?;
        let pages = match (entries, server) {
            (Some(f), _) => {
                let t = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let list = entries_of(&t);
                list.chunks(s.page_size.max(1)).map(<[String]>::to_vec).collect()
            }
            (None, Some(url)) => fetch_pages(url, &s.entries_path).await?,
            (None, None) => bail!(
                "the proof holds {} entries in {} pages served at {}: pass --server URL to fetch them, or --entries FILE",
                s.entry_count,
                s.entry_pages,
                s.entries_path
            ),
        };
        community::draw::verify_paged(&s, &pages)
            .map_err(|e| anyhow::anyhow!("the draw does NOT check out: {e}"))?;
        (s.entry_count, s.winners)
    };
    println!("the draw checks out: {count} entries, seed matches its published hash, winners:");
    for (i, w) in winners.iter().enumerate() {
        println!("  {}. {w}", i + 1);
    }
    Ok(())
}

/// The pseudonyms of an entries file (see `verify-draw --entries`).
fn entries_of(text: &str) -> Vec<String> {
    use serde_json::Value;
    fn from(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|e| from(e, out)),
            Value::Object(o) => {
                if let Some(i) = o.get("items") {
                    from(i, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        from(&v, &mut out);
        return out;
    }
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => from(&v, &mut out),
            Err(_) => out.push(line.to_owned()),
        }
    }
    out
}

/// Reads every page of `path` from `server`, following `next_cursor`.
async fn fetch_pages(server: &str, path: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let client = reqwest::Client::new();
    let base = format!("{}{path}", server.trim_end_matches('/'));
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client.get(&base);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot fetch {base}"))?;
        if !res.status().is_success() {
            bail!("{base}: HTTP {}", res.status());
        }
        let page: serde_json::Value = res.json().await.context("an entry page is not JSON")?;
        let mut list = Vec::new();
        for e in page["items"].as_array().into_iter().flatten() {
            list.push(e.as_str().context("an entry is not a string")?.to_owned());
        }
        pages.push(list);
        match page["next_cursor"].as_str() {
            Some(c) if pages.len() <= 1_000_000 => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    Ok(pages)
}

/// `community events replay`: sends the outbox events written between
/// `from` and `to` (RFC 3339) to their queues again (`community::relay::replay`).
/// On AWS only: the queue URLs come from `POINTS_QUEUE_URL`,
/// `EMAILS_QUEUE_URL`, `LOYALTY_QUEUE_URL` and `INSIGHTS_QUEUE_URL`, as the
/// relay function's. Locally the relay deletes an outbox item as soon as
/// its messages are in the local queues, and a failed message waits in the
/// dead letters (`POST /local/dead-letters/redrive`), so there is nothing
/// to replay.
pub async fn replay_cmd(
    target: &TargetArgs,
    from: &str,
    to: &str,
    queue: Option<&str>,
) -> anyhow::Result<()> {
    let ms = |what: &str, s: &str| -> anyhow::Result<u64> {
        let t = community::domain::parse_ts(s).with_context(|| {
            format!("--{what} {s:?} is not an RFC 3339 time (e.g. 2026-12-04T20:00:00Z)")
        })?;
        u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .with_context(|| format!("--{what} is before 1970"))
    };
    let (from_ms, to_ms) = (ms("from", from)?, ms("to", to)?);
    if from_ms > to_ms {
        bail!("--from must be before --to");
    }
    let only =
        match queue {
            None => None,
            Some(q) => Some(community::events::Queue::parse(q).with_context(|| {
                format!("--queue {q:?}: one of points, emails, insights, loyalty")
            })?),
        };
    if target.target == Target::Local {
        bail!(
            "nothing to replay locally: the local relay deletes an outbox item once its \
             messages are queued, and failed messages wait in the dead letters \
             (GET /local/dead-letters, POST /local/dead-letters/redrive). Use --target aws."
        );
    }
    let table = target.open().await?;
    let aws = aws_config::load_from_env().await;
    let out = community::relay::SqsOutbound::from_env(aws_sdk_sqs::Client::new(&aws))
        .map_err(|e| anyhow::anyhow!("{e} (the relay function's queue URLs)"))?;
    let report = community::relay::replay(table.as_ref(), &out, from_ms, to_ms, only).await?;
    println!(
        "{} outbox events between {from} and {to} in {}",
        report.events,
        target.describe()
    );
    for (q, n) in &report.sent {
        println!("  {n} messages sent to the {q} queue");
    }
    Ok(())
}

/// `launch public|soft --target local|aws [--dry-run]`: shows the launch
/// mode now and what switching changes, then writes it (`community::live`);
/// every function reads it within `live::TTL`.
pub async fn launch_cmd(mode: Mode, target: &TargetArgs, dry_run: bool) -> anyhow::Result<()> {
    let wanted = LaunchMode::from(mode);
    let table = if dry_run && target.local_store_missing() {
        None
    } else {
        Some(target.open().await?)
    };
    let applied = match &table {
        Some(t) => community::live::read(t.as_ref())
            .await
            .context("cannot read the launch mode")?,
        None => community::live::Applied::default(),
    };
    let (now, since) = match &applied.launch {
        Some(l) => (l.mode, format!("since {}", l.changed_at)),
        None => {
            let files = applied
                .files
                .clone()
                .unwrap_or_else(community::config::CampaignFiles::builtin);
            let s = files
                .settings("the table")
                .context("the applied campaign is not valid")?;
            (
                LaunchMode::of(&s),
                "from community.toml's invite_only: no launch command has run".to_owned(),
            )
        }
    };
    println!(
        "launch on {}: {} ({since})",
        target.describe(),
        now.as_str()
    );
    if now == wanted {
        println!("already {}: nothing to do", wanted.as_str());
        return Ok(());
    }
    println!("→ {}:", wanted.as_str());
    match wanted {
        LaunchMode::Public => {
            println!(
                "  sign-up no longer needs an invite code (invites still record their cohort)"
            );
            println!("  ideas, contests, product tests and the rest can be read without a token");
        }
        LaunchMode::Soft => {
            println!("  sign-up needs an invite code again");
            println!("  every read except /health, /community and the docs needs a member's token");
        }
    }
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let Some(table) = table else {
        bail!("no table opened");
    };
    table
        .transact(vec![community::live::launch_write(
            wanted,
            &community::domain::now(),
        )])
        .await
        .context("the launch mode was not written")?;
    println!(
        "done: {} is {}; every function takes it within {} s",
        target.describe(),
        wanted.as_str(),
        community::live::TTL.as_secs()
    );
    Ok(())
}
