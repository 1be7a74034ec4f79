//! The results of a co-creation challenge (défi) are mailed to every
//! participant once: the authors of its proposals (winners told they won)
//! and its voters who accept community mails, in pages of the challenge's
//! participants. Through the consumer's Lambda entry, every batch twice.

use community::challenges::{NewProposal, ResultsRequest, WinnerRequest};
use community::domain::IdeaId;
use community::events::{Event, Kind};
use community::mail::dir::DirMailbox;
use community::store::{Index, Query, Table};
use community::testing::{apply_challenges, at, caller, challenge, embedded_app, join, member};
use community::App;
use emails::EmailsConsumer;
use std::collections::{BTreeMap, BTreeSet};

async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..community::events::OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000);
        for i in app.table.query(&q).await.expect("outbox").items {
            out.extend(Event::from_item(&i));
        }
    }
    out
}

async fn deliver<T: Table + Clone>(consumer: &EmailsConsumer<T, DirMailbox>, events: &[Event]) {
    for chunk in events.chunks(10) {
        for _ in 0..2 {
            let res = community::queue::sqs(consumer, community::testing::sqs_batch(chunk))
                .await
                .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
        }
    }
}

#[tokio::test]
async fn every_participant_is_told_the_results_once() {
    let (app, dir) = embedded_app(|_| {});
    let mut c = challenge("defi", -60, 3600, Some("bonne-maman"));
    apply_challenges(&app, vec![c.clone()]).await;
    let names = ["ana", "bob", "cid", "dan", "eve"];
    let m: Vec<_> = names.iter().map(|n| member(n)).collect();
    for who in &m {
        join(&app, who).await;
    }
    let [ana, bob, cid, dan, eve] = &m[..] else {
        unreachable!()
    };
    let mut ideas = Vec::new();
    for (i, who) in [ana, bob, ana].into_iter().enumerate() {
        let req = NewProposal {
            title: Some(format!("Des pots consignés n°{i}")),
            body: Some("Des pots en verre rapportés vides et remplis de nouveau.".into()),
        };
        let v = community::challenges::propose(&app, &caller(who), "defi", req, None)
            .await
            .expect("proposal");
        ideas.push(v.id);
    }
    // cid and dan vote; dan does not want community mails; eve does nothing.
    for who in [cid, dan] {
        community::votes::cast(&app, &caller(who), &IdeaId::parse(&ideas[1]).expect("id"))
            .await
            .expect("vote");
    }
    let url = community::mail::unsubscribe_url(&app.settings(), caller(dan).id.as_str());
    let token = url.rsplit('/').next().expect("token");
    community::mail::unsubscribe(&app, token)
        .await
        .expect("unsubscribe");
    // Insights record the voters as participants (the votes' events).
    community::testing::run_insights(&app).await;
    community::testing::insights_votes(&app, &ideas[1], &[cid, dan]).await;

    c.opens_at = at(-7200);
    c.closes_at = at(-60);
    apply_challenges(&app, vec![c]).await;
    let mia = member("mia").in_groups(&["marketing"]);
    community::challenges::publish(
        &app,
        &caller(&mia),
        "defi",
        ResultsRequest {
            winners: Some(vec![WinnerRequest {
                idea_id: Some(ideas[0].clone()),
                note: None,
            }]),
            answer: Some("Merci pour vos propositions, les pots arrivent au printemps.".into()),
        },
    )
    .await
    .expect("results");
    let decided: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::ChallengeDecided)
        .collect();
    assert_eq!(decided.len(), 1);

    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    deliver(&consumer, &decided).await;
    let mut done = BTreeSet::new();
    loop {
        let pages: Vec<Event> = outbox(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::MailPage && e.event_id.starts_with(&decided[0].event_id))
            .filter(|e| !done.contains(&e.event_id))
            .collect();
        if pages.is_empty() {
            break;
        }
        done.extend(pages.iter().map(|p| p.event_id.clone()));
        deliver(&consumer, &pages).await;
    }
    assert_eq!(done.len(), community::challenges::BUCKETS as usize);
    let mut to: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in mailbox.list().expect("list") {
        if mail.mail_id.ends_with("-challenge") {
            to.entry(mail.to).or_default().push(mail.subject);
        }
    }
    let got: Vec<(&str, usize, bool)> = to
        .iter()
        .map(|(k, v)| (k.as_str(), v.len(), v[0].contains("a gagné")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ana@example.fr", 1, true),
            ("bob@example.fr", 1, false),
            ("cid@example.fr", 1, false),
        ],
        "authors and the voter who accepts mails, once each; not dan, not {}",
        eve.sub
    );
}
