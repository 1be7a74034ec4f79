//! Domain events: derived from the change itself, or written in the same
//! atomic write as the change.
//!
//! - A vote's event is its record's own change (`from_change`): the record
//!   is put or deleted, and the stream carries that.
//! - Every other state change others react to writes an event item **in
//!   the same atomic write as the change** (`Event::write`): the outbox. The
//!   item lives under one of `OUTBOX_BUCKETS` partitions
//!   (`OUTBOX#{b} / {event_id}`) so that a burst of events spreads over many
//!   partitions.
//!
//! Both reach the relay through the change feed (`store::feed`): on AWS the
//! table's stream invokes the `relay` function, which sends each event to
//! the queues its kind is routed to (`routes`), and outbox items expire by
//! TTL; locally the local server's relay reads the embedded feed, moves each
//! event into durable local queues and deletes the outbox item.
//!
//! Consumers apply an event once: each writes a marker `DONE#{consumer}#{id}`
//! with the condition that it does not exist, in the same transaction as its
//! effect (`consumed_marker`).

use crate::domain::now;
use crate::store::feed::{Change, ChangeName};
use crate::store::{Item, Key, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OUTBOX_BUCKETS: u32 = 16;
/// Outbox items are kept a week (TTL) on AWS, long after the relay read them.
pub const OUTBOX_TTL_SECS: i64 = 7 * 24 * 3600;

/// The queues events are delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    Points,
    Emails,
    /// Outbound: the loyalty programme's integration point (redemptions,
    /// and the cards to confirm).
    Loyalty,
    /// Marketing's aggregates and the members' activity counters (insights.rs).
    Insights,
    /// Inbound: the loyalty programme's answers to redemptions and to card
    /// links (loyalty.rs, cards.rs).
    /// Nothing is relayed to it; the loyalty programme sends to it.
    LoyaltyAnswers,
    /// Inbound: SES's bounces and complaints (mail/feedback.rs), through the
    /// configuration set's SNS topic. Nothing is relayed to it.
    MailFeedback,
    /// Inbound: the loyalty programme's weekly basket summaries (baskets.rs).
    /// Nothing is relayed to it.
    Baskets,
}

impl Queue {
    pub const ALL: [Queue; 7] = [
        Queue::Points,
        Queue::Emails,
        Queue::Loyalty,
        Queue::Insights,
        Queue::LoyaltyAnswers,
        Queue::MailFeedback,
        Queue::Baskets,
    ];
    /// The queues the relay sends events to (`routes`).
    pub const ROUTED: [Queue; 4] = [
        Queue::Points,
        Queue::Emails,
        Queue::Loyalty,
        Queue::Insights,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Queue::Points => "points",
            Queue::Emails => "emails",
            Queue::Loyalty => "loyalty",
            Queue::Insights => "insights",
            Queue::LoyaltyAnswers => "loyalty_answers",
            Queue::MailFeedback => "mail_feedback",
            Queue::Baskets => "baskets",
        }
    }
    pub fn parse(s: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|q| q.name() == s)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "member.signed_up")]
    MemberSignedUp,
    #[serde(rename = "idea.posted")]
    IdeaPosted,
    #[serde(rename = "vote.cast")]
    VoteCast,
    #[serde(rename = "vote.withdrawn")]
    VoteWithdrawn,
    #[serde(rename = "idea.reached_threshold")]
    IdeaReachedThreshold,
    #[serde(rename = "idea.decided")]
    IdeaDecided,
    #[serde(rename = "idea.progressed")]
    IdeaProgressed,
    #[serde(rename = "points.redeemed")]
    PointsRedeemed,
    #[serde(rename = "contest.entered")]
    ContestEntered,
    #[serde(rename = "contest.drawn")]
    ContestDrawn,
    #[serde(rename = "product_test.testers_selected")]
    TestersSelected,
    #[serde(rename = "review.posted")]
    ReviewPosted,
    #[serde(rename = "comment.posted")]
    CommentPosted,
    /// A moderator (or enough reports) hid an idea, comment or review.
    #[serde(rename = "content.hidden")]
    ContentHidden,
    #[serde(rename = "content.restored")]
    ContentRestored,
    /// GDPR erasure of a member's personal data.
    #[serde(rename = "member.erased")]
    MemberErased,
    /// One page of a fan-out mail (a decision or progress of an idea sent
    /// to its voters, or community news sent to the members who want it):
    /// the emails consumer's own continuation, one queue message per page
    /// of one voter (or news index) bucket (`mail::FANOUT_PAGE`).
    #[serde(rename = "mail.page")]
    MailPage,
    /// The loyalty programme answered a redemption (`credited` or
    /// `rejected`): recorded on it, a rejection's points given back.
    #[serde(rename = "points.redemption_answered")]
    RedemptionAnswered,
    /// Inbound only: a message of the loyalty programme's answer queue, as
    /// its consumer sees it (`loyalty::Answer::into_event`); never in the
    /// outbox, never relayed.
    #[serde(rename = "loyalty.answered")]
    LoyaltyAnswered,
    /// A member linked a loyalty card (sign-up or profile): the loyalty
    /// programme is asked to confirm it is a real card (cards.rs). `data`
    /// carries the full card number, for the loyalty programme only.
    #[serde(rename = "member.card_linked")]
    MemberCardLinked,
    /// The loyalty programme did not recognise a member's card: it was
    /// unlinked; the member is mailed (cards.rs).
    #[serde(rename = "member.card_rejected")]
    MemberCardRejected,
    /// Inbound only: SES's bounce or complaint about a mail, as the
    /// `mail_feedback` consumer sees it (`mail::feedback::parse`); never in
    /// the outbox, never relayed.
    #[serde(rename = "mail.feedback")]
    MailFeedback,
    /// Inbound only: a weekly basket summary of the loyalty programme, as
    /// the `baskets` consumer sees it (`baskets::parse`); never in the
    /// outbox, never relayed.
    #[serde(rename = "basket.week")]
    BasketWeek,
    /// The committee or a moderator answered an idea (answers.rs): its
    /// author and followers are mailed, insights count the first answer.
    #[serde(rename = "idea.answered")]
    IdeaAnswered,
    /// Marketing's `campaigns apply` created a contest or a product test:
    /// the members who want community news are mailed, in pages of the
    /// news index (`mail::start_news`). Its id is derived from the campaign
    /// (`campaigns::news_event_id`), and it is written only with the
    /// campaign's creation, so a campaign is announced once.
    #[serde(rename = "community.news")]
    CommunityNews,
    /// A moderator merged a duplicate idea into another (`crate::merge`):
    /// the emails consumer tells its author and starts the copy of its votes
    /// and followers onto the target, in pages (`merge.page`).
    #[serde(rename = "idea.merged")]
    IdeaMerged,
    /// One page of a merge's copy: one bucket's voters or follow records
    /// (`merge::PAGE` at most), run by the emails consumer.
    #[serde(rename = "merge.page")]
    MergePage,
    /// The owner of a co-creation challenge (marketing, or its sponsoring
    /// brand) published its results (`crate::challenges`): winners earn
    /// their points once, every proposal's author is told (in pages of the
    /// challenge's proposals), insights move the winners' statuses.
    #[serde(rename = "challenge.decided")]
    ChallengeDecided,
    /// Events and round tables (`crate::roundtables`): a member registered
    /// (`status`: `registered` or `waitlisted`).
    #[serde(rename = "roundtable.registered")]
    RoundtableRegistered,
    /// A member cancelled (`was`), and who took the freed seat (`promoted`).
    #[serde(rename = "roundtable.cancelled")]
    RoundtableCancelled,
    /// A waiting member took a freed seat: they are mailed.
    #[serde(rename = "roundtable.promoted")]
    RoundtablePromoted,
    /// One page of the reminder the day before (the scheduled run writes
    /// page 0 once per event; the emails consumer writes the next ones).
    #[serde(rename = "roundtable.reminder")]
    RoundtableReminder,
    /// Marketing recorded a registered member's attendance: points, once.
    #[serde(rename = "roundtable.attended")]
    RoundtableAttended,
    /// A member responded to a survey (`crate::surveys`): the points
    /// consumer credits the survey's points once, the insights consumer
    /// folds its `tally` into the survey's results and counts the response
    /// in its cohort.
    #[serde(rename = "survey.responded")]
    SurveyResponded,
    /// A member applied to a product test (`crate::products`): the insights
    /// consumer counts the application for the test (its brand's report),
    /// folded per batch, never in the application's own transaction.
    #[serde(rename = "product_test.applied")]
    ProductTestApplied,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MemberSignedUp => "member.signed_up",
            Kind::IdeaPosted => "idea.posted",
            Kind::VoteCast => "vote.cast",
            Kind::VoteWithdrawn => "vote.withdrawn",
            Kind::IdeaReachedThreshold => "idea.reached_threshold",
            Kind::IdeaDecided => "idea.decided",
            Kind::IdeaProgressed => "idea.progressed",
            Kind::PointsRedeemed => "points.redeemed",
            Kind::ContestEntered => "contest.entered",
            Kind::ContestDrawn => "contest.drawn",
            Kind::TestersSelected => "product_test.testers_selected",
            Kind::ReviewPosted => "review.posted",
            Kind::CommentPosted => "comment.posted",
            Kind::ContentHidden => "content.hidden",
            Kind::ContentRestored => "content.restored",
            Kind::MemberErased => "member.erased",
            Kind::MailPage => "mail.page",
            Kind::RedemptionAnswered => "points.redemption_answered",
            Kind::LoyaltyAnswered => "loyalty.answered",
            Kind::MemberCardLinked => "member.card_linked",
            Kind::MemberCardRejected => "member.card_rejected",
            Kind::MailFeedback => "mail.feedback",
            Kind::BasketWeek => "basket.week",
            Kind::IdeaAnswered => "idea.answered",
            Kind::CommunityNews => "community.news",
            Kind::IdeaMerged => "idea.merged",
            Kind::MergePage => "merge.page",
            Kind::ChallengeDecided => "challenge.decided",
            Kind::RoundtableRegistered => "roundtable.registered",
            Kind::RoundtableCancelled => "roundtable.cancelled",
            Kind::RoundtablePromoted => "roundtable.promoted",
            Kind::RoundtableReminder => "roundtable.reminder",
            Kind::RoundtableAttended => "roundtable.attended",
            Kind::SurveyResponded => "survey.responded",
            Kind::ProductTestApplied => "product_test.applied",
        }
    }
}

/// Which queues an event kind goes to. The relay (AWS and local) uses this
/// one table.
pub fn routes(kind: Kind) -> &'static [Queue] {
    match kind {
        Kind::MemberSignedUp => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::IdeaPosted => &[Queue::Points, Queue::Insights],
        // Counting votes is not a queue's job: the thresholds aggregator
        // reads the vote records' changes from the stream itself, and a
        // vote's points are read from the vote records (points.rs). Only
        // the voter's last active day is left to the insights consumer.
        Kind::VoteCast => &[Queue::Insights],
        // Nothing reacts to a withdrawal but the aggregator (from the stream).
        Kind::VoteWithdrawn => &[],
        Kind::IdeaReachedThreshold => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::IdeaDecided => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::IdeaProgressed => &[Queue::Emails, Queue::Insights],
        Kind::PointsRedeemed => &[Queue::Loyalty, Queue::Insights],
        Kind::ContestEntered => &[Queue::Points, Queue::Insights],
        Kind::ContestDrawn => &[Queue::Emails],
        Kind::TestersSelected => &[Queue::Emails],
        Kind::ReviewPosted => &[Queue::Points, Queue::Insights],
        Kind::CommentPosted => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::ContentHidden => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::ContentRestored => &[Queue::Points, Queue::Emails, Queue::Insights],
        Kind::MemberErased => &[Queue::Points, Queue::Insights],
        Kind::MailPage => &[Queue::Emails],
        Kind::RedemptionAnswered => &[Queue::Emails, Queue::Insights],
        Kind::LoyaltyAnswered | Kind::MailFeedback | Kind::BasketWeek => &[],
        Kind::MemberCardLinked => &[Queue::Loyalty],
        Kind::MemberCardRejected => &[Queue::Emails],
        Kind::IdeaAnswered => &[Queue::Emails, Queue::Insights],
        Kind::CommunityNews => &[Queue::Emails],
        // The author's mail and the pages of the copy, continued on the
        // same queue as the fan-out pages (`crate::merge`).
        Kind::IdeaMerged | Kind::MergePage => &[Queue::Emails],
        Kind::ChallengeDecided => &[Queue::Points, Queue::Emails, Queue::Insights],
        // Events and round tables: insights count seats per event; the
        // promoted member and the reminder are mailed; attendance earns points.
        Kind::RoundtableRegistered | Kind::RoundtableCancelled => &[Queue::Insights],
        Kind::RoundtablePromoted => &[Queue::Emails, Queue::Insights],
        Kind::RoundtableReminder => &[Queue::Emails],
        Kind::RoundtableAttended => &[Queue::Points, Queue::Insights],
        Kind::SurveyResponded => &[Queue::Points, Queue::Insights],
        Kind::ProductTestApplied => &[Queue::Insights],
    }
}

/// An event as stored in the outbox and sent on queues (the message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub kind: Kind,
    pub at: String,
    /// The member the event is about (the actor, or the author for idea events).
    pub member_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idea_id: Option<String>,
    /// Kind-specific details.
    #[serde(default)]
    pub data: Value,
}

impl Event {
    pub fn new(kind: Kind, member_id: &str, idea_id: Option<&str>, data: Value) -> Event {
        Event {
            event_id: ulid::Ulid::new().to_string(),
            kind,
            at: now(),
            member_id: member_id.to_owned(),
            idea_id: idea_id.map(str::to_owned),
            data,
        }
    }

    pub fn outbox_key(event_id: &str) -> Key {
        let h = Sha256::digest(event_id.as_bytes());
        let b = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % OUTBOX_BUCKETS;
        Key::new(outbox_pk(b), event_id)
    }

    /// The outbox write to add to the transaction of the change.
    pub fn write(&self) -> Write {
        let k = Event::outbox_key(&self.event_id);
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + OUTBOX_TTL_SECS;
        let mut item = Item::new();
        item.insert("pk".into(), json!(k.pk));
        item.insert("sk".into(), json!(k.sk));
        item.insert(
            "event".into(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        item.insert("ttl".into(), json!(expires));
        Write::put_new(item)
    }

    /// Reads an event back from an outbox item.
    pub fn from_item(item: &Item) -> Option<Event> {
        serde_json::from_value(item.get("event")?.clone()).ok()
    }
}

/// The event a streamed change carries: an outbox insert's stored event,
/// or a vote record's insert (`vote.cast`) or removal (`vote.withdrawn`).
/// A vote event's id comes from the record (`vote_id`), so a change
/// delivered twice gives the same event twice, which consumers absorb. A
/// vote a merge copied (`merged_from`) carries no event.
pub fn from_change(c: &Change) -> Option<Event> {
    if is_outbox_pk(&c.pk) {
        return match c.name {
            ChangeName::Insert => Event::from_item(c.new.as_ref()?),
            _ => None,
        };
    }
    let idea = crate::votes::idea_of_pk(&c.pk)?;
    let image = c.image();
    let text = |a: &str| image.and_then(|i| i.get(a)).and_then(Value::as_str);
    // A vote copied by a merge (`crate::merge`) is no act of its member:
    // the aggregator counts it, nothing else reacts to it.
    if text(crate::merge::MERGED_FROM).is_some() {
        return None;
    }
    let vote_id = text("vote_id").map_or_else(|| format!("seq.{}", c.seq), str::to_owned);
    let (kind, event_id) = match c.name {
        ChangeName::Insert => (Kind::VoteCast, vote_id),
        ChangeName::Remove => (Kind::VoteWithdrawn, format!("{vote_id}.withdrawn")),
        ChangeName::Modify => return None,
    };
    let at = match (c.name, text("created_at")) {
        (ChangeName::Insert, Some(t)) => t.to_owned(),
        _ => time::OffsetDateTime::from_unix_timestamp(c.at)
            .map(crate::domain::format_ts)
            .unwrap_or_else(|_| now()),
    };
    let mut data = serde_json::Map::new();
    if let Some(a) = text("author_id") {
        data.insert("author_id".into(), json!(a));
    }
    // A vote on a challenge's proposal (insights count them per challenge).
    if let Some(c) = text("challenge_id") {
        data.insert("challenge_id".into(), json!(c));
    }
    Some(Event {
        event_id,
        kind,
        at,
        member_id: text("member_id").unwrap_or(c.sk.as_str()).to_owned(),
        idea_id: Some(idea.to_owned()),
        data: Value::Object(data),
    })
}

pub fn outbox_pk(bucket: u32) -> String {
    format!("OUTBOX#{bucket:02}")
}

/// Whether `pk` is an outbox partition (an event with no entity write of
/// its own).
pub fn is_outbox_pk(pk: &str) -> bool {
    pk.starts_with("OUTBOX#")
}

/// The exactly-once marker of `consumer` for `event_id`: put it, with its
/// condition, in the same transaction as the consumer's effect.
pub fn consumed_marker(consumer: &str, business_key: &str) -> Write {
    consumed_marker_with(consumer, business_key, &[])
}

/// The key of a consumer's marker for a business key.
pub fn marker_key(consumer: &str, business_key: &str) -> Key {
    Key::new(format!("DONE#{consumer}#{business_key}"), "DONE")
}

/// How long a consumer's marker is kept (DynamoDB TTL): far longer than
/// any message can still be delivered (a queue keeps a message 4 days, its
/// dead-letter queue 14, counted from the first send), so a redelivery
/// always finds it, and the table does not keep one item per event forever.
pub const MARKER_TTL_SECS: i64 = 90 * 24 * 3600;

/// A marker that also records what its effect was. It expires after
/// [`MARKER_TTL_SECS`]; a record read later than that is a
/// [`lasting_marker_with`].
pub fn consumed_marker_with(consumer: &str, business_key: &str, attrs: &[(&str, Value)]) -> Write {
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + MARKER_TTL_SECS;
    let mut w = lasting_marker_with(consumer, business_key, attrs);
    if let Write::Put { item, .. } = &mut w {
        item.insert(crate::store::TTL.into(), json!(expires));
    }
    w
}

/// A marker kept for good, for effects read back long after (the points
/// consumer keeps the points a credit gave, so moderation can take them
/// back whenever the content is hidden).
pub fn lasting_marker_with(consumer: &str, business_key: &str, attrs: &[(&str, Value)]) -> Write {
    let k = marker_key(consumer, business_key);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("at".into(), json!(now()));
    for (a, v) in attrs {
        item.insert((*a).to_owned(), v.clone());
    }
    Write::put_new(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_expire_long_after_any_redelivery_unless_they_are_records() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Write::Put { item, .. } = consumed_marker("insights", "e1") else {
            panic!("a put")
        };
        let ttl = item[crate::store::TTL].as_i64().expect("a TTL");
        // Past the 14 days of a dead-letter queue, by far.
        assert!(ttl >= now + 60 * 24 * 3600, "{ttl}");
        let Write::Put { item, .. } =
            lasting_marker_with("points", "idea#1", &[("points", json!(20))])
        else {
            panic!("a put")
        };
        assert!(!item.contains_key(crate::store::TTL));
        assert_eq!(item["points"], json!(20));
    }

    #[test]
    fn events_round_trip_through_the_outbox_item() {
        let e = Event::new(
            Kind::VoteCast,
            "alice",
            Some("01JD0000000000000000000000"),
            json!({"x": 1}),
        );
        let Write::Put { item, .. } = e.write() else {
            panic!("a put")
        };
        assert_eq!(Event::from_item(&item), Some(e.clone()));
        assert!(item["pk"]
            .as_str()
            .is_some_and(|p| p.starts_with("OUTBOX#")));
        let body = serde_json::to_value(&e).expect("json");
        assert_eq!(body["kind"], "vote.cast");
    }

    #[test]
    fn a_vote_copied_by_a_merge_carries_no_event() {
        let mut image = Item::new();
        for (k, v) in [
            ("pk", "VOTERS#01JD8Z3K4M5N6P7Q8R9S0TVWXZ#03"),
            ("sk", "bob"),
            ("member_id", "bob"),
            ("vote_id", "v1"),
        ] {
            image.insert(k.into(), json!(v));
        }
        let change = |image: &Item| Change {
            seq: "1".into(),
            name: ChangeName::Insert,
            pk: "VOTERS#01JD8Z3K4M5N6P7Q8R9S0TVWXZ#03".into(),
            sk: "bob".into(),
            new: Some(image.clone()),
            old: None,
            at: 0,
        };
        assert_eq!(
            from_change(&change(&image)).map(|e| e.kind),
            Some(Kind::VoteCast)
        );
        image.insert(
            crate::merge::MERGED_FROM.into(),
            json!("01JD8Z3K4M5N6P7Q8R9S0TVWXY"),
        );
        assert_eq!(from_change(&change(&image)), None);
    }

    #[test]
    fn every_kind_but_a_withdrawal_goes_to_a_queue() {
        for k in [
            Kind::MemberSignedUp,
            Kind::IdeaPosted,
            Kind::VoteCast,
            Kind::VoteWithdrawn,
            Kind::IdeaReachedThreshold,
            Kind::IdeaDecided,
            Kind::IdeaProgressed,
            Kind::PointsRedeemed,
            Kind::ContestEntered,
            Kind::ContestDrawn,
            Kind::TestersSelected,
            Kind::ReviewPosted,
            Kind::CommentPosted,
            Kind::ContentHidden,
            Kind::ContentRestored,
            Kind::MemberErased,
            Kind::MailPage,
            Kind::RedemptionAnswered,
            Kind::LoyaltyAnswered,
            Kind::MemberCardLinked,
            Kind::MemberCardRejected,
            Kind::MailFeedback,
            Kind::BasketWeek,
            Kind::IdeaAnswered,
            Kind::CommunityNews,
            Kind::IdeaMerged,
            Kind::MergePage,
            Kind::RoundtableRegistered,
            Kind::RoundtableCancelled,
            Kind::RoundtablePromoted,
            Kind::RoundtableReminder,
            Kind::RoundtableAttended,
            Kind::SurveyResponded,
            Kind::ProductTestApplied,
        ] {
            // A withdrawal goes to no queue: the aggregator reads it from
            // the stream, and nothing else reacts to it. A loyalty answer
            // arrives on its own queue, from outside.
            assert_eq!(
                routes(k).is_empty(),
                matches!(
                    k,
                    Kind::VoteWithdrawn
                        | Kind::LoyaltyAnswered
                        | Kind::MailFeedback
                        | Kind::BasketWeek
                ),
                "{k:?}"
            );
            assert!(routes(k).iter().all(|q| Queue::ROUTED.contains(q)));
            let s = serde_json::to_value(k).expect("json");
            assert_eq!(s, json!(k.as_str()));
        }
    }
}
