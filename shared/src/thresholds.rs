//! The `thresholds` consumer: after vote events it rolls the idea's count up
//! onto its row (lists, `sort=top`) and, when the exact count reaches the
//! campaign threshold, moves the idea `open → under_review` exactly once —
//! the transition is conditional on `status = open` and carries the
//! `idea.reached_threshold` event and the consumer's marker in the same write.

use crate::app::App;
use crate::domain::{now, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::events::{consumed_marker, Event, Kind};
use crate::queue::Consumer;
use crate::store::{StoreError, Table, Update};
use crate::{ideas, votes};
use async_trait::async_trait;
use serde_json::json;
use std::collections::BTreeMap;

pub const CONSUMER: &str = "thresholds";
/// The review queue: ideas under review, oldest first (gsi3).
pub const REVIEW_PK: &str = "REVIEW";

pub struct ThresholdsConsumer<T> {
    pub app: App<T>,
}

/// Rolls up one idea and checks its threshold.
pub async fn check<T: Table>(app: &App<T>, idea: &IdeaId) -> Result<()> {
    match votes::rollup(app, idea).await {
        Ok(()) => {}
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    }
    let t = votes::tally(app, idea).await?;
    let row = ideas::load(app, idea, true).await?;
    if row.status != IdeaStatus::Open || (t.votes as u64) < app.settings.vote_threshold {
        return Ok(());
    }
    let at = now();
    let event = Event::new(
        Kind::IdeaReachedThreshold,
        &row.author_id,
        Some(&row.id),
        json!({"votes": t.votes, "threshold": app.settings.vote_threshold, "title": row.title}),
    );
    let extra = Update::default()
        .set("reached_threshold_at", at.as_str())
        .set("gsi3pk", REVIEW_PK)
        .set("gsi3sk", format!("{at}#{}", row.id));
    let also = vec![
        event.write(),
        consumed_marker(CONSUMER, &format!("reached#{}", row.id)),
    ];
    match votes::close(app, idea, IdeaStatus::UnderReview, extra, also).await {
        Ok(_) => {
            crate::metrics::record_threshold_reached();
            tracing::info!(idea = %row.id, votes = t.votes, "idea reached the threshold");
            Ok(())
        }
        // Someone else moved it first (another batch, a redelivery).
        Err(Error::Conflict(_)) | Err(Error::Store(StoreError::ConditionFailed { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl<T: Table + Clone> Consumer for ThresholdsConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        match (e.kind, e.idea_id.as_deref().and_then(IdeaId::parse)) {
            (Kind::VoteCast | Kind::VoteWithdrawn, Some(idea)) => check(&self.app, &idea).await,
            _ => Ok(()),
        }
    }

    /// One roll-up and check per idea per batch, however many of its votes
    /// the batch holds; a failure fails that idea's messages only.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut by_idea: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, e) in batch {
            let key = match (e.kind, &e.idea_id) {
                (Kind::VoteCast | Kind::VoteWithdrawn, Some(i)) => i.clone(),
                _ => continue,
            };
            by_idea.entry(key).or_default().push(id.clone());
        }
        let mut failed = Vec::new();
        for (idea, ids) in by_idea {
            let Some(idea_id) = IdeaId::parse(&idea) else {
                continue;
            };
            if let Err(e) = check(&self.app, &idea_id).await {
                tracing::warn!(idea = %idea, error = %e, "threshold check failed; retried");
                failed.extend(ids);
            }
        }
        failed
    }
}
