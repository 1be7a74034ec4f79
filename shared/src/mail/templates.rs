//! French mail copy, in the vocabulary of the programme ("Si j'étais…",
//! le comité de faisabilité, la communauté). Each template renders a plain
//! text part and an HTML part; user text is escaped in HTML.

use super::tracked_url;
use crate::config::Settings;
use crate::domain::IdeaStatus;
use crate::events::{Event, Kind};
use crate::ideas::IdeaRow;

pub struct Rendered {
    pub mail_id: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn idea_url(s: &Settings, idea: &IdeaRow) -> String {
    format!("{}/ideas/{}", s.public_url, idea.id)
}

fn html_paragraphs(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("<p>{}</p>", esc(l).replace('\n', "<br>")))
        .collect()
}

pub(crate) fn render(
    mail_id: String,
    subject: String,
    lines: Vec<String>,
    link: Option<(String, String)>,
) -> Rendered {
    let mut text = lines.join("\n\n");
    let mut html = html_paragraphs(&lines);
    if let Some((label, url)) = link {
        text.push_str(&format!("\n\n{label} : {url}"));
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            esc(&url),
            esc(&label)
        ));
    }
    Rendered {
        mail_id,
        subject,
        text,
        html,
    }
}

pub fn welcome(s: &Settings, name: &str, _event: &str, member: &str) -> Rendered {
    let themes: Vec<&str> = s.themes.iter().map(|t| t.label.as_str()).collect();
    let mail_id = "welcome".to_string();
    render(
        mail_id.clone(),
        "Bienvenue dans la communauté !".into(),
        vec![
            format!("Bonjour {name},"),
            "Bienvenue dans la communauté ! Vous pouvez désormais proposer vos idées pour le magasin de demain — « Si j'étais… » — et voter pour celles des autres membres.".into(),
            format!("Cinq thèmes vous attendent : {}.", themes.join(", ")),
            format!("Une idée qui recueille {} votes est étudiée par notre comité de faisabilité, qui vous répond dans tous les cas.", s.vote_threshold),
        ],
        Some(("Proposer une idée".into(), tracked_url(s, &mail_id, member, &format!("{}/ideas", s.public_url)))),
    )
}

pub fn for_author(s: &Settings, e: &Event, idea: &IdeaRow, name: &str, member: &str) -> Rendered {
    let title = &idea.title;
    let mail_id = format!("{}-author", e.event_id);
    let link = Some((
        "Suivre votre idée".to_string(),
        tracked_url(s, &mail_id, member, &idea_url(s, idea)),
    ));
    match e.kind {
        Kind::IdeaReachedThreshold => render(
            mail_id,
            format!("Votre idée « {title} » est à l'étude"),
            vec![
                format!("Bonjour {name},"),
                format!("Votre idée « {title} » a recueilli {} votes. Elle est maintenant étudiée par notre comité de faisabilité.", e.data["votes"]),
                "Le comité vous répondra : que l'idée soit retenue ou non, vous saurez pourquoi.".into(),
            ],
            link,
        ),
        Kind::IdeaDecided => {
            let reason = e.data["reason"].as_str().unwrap_or_default();
            if e.data["outcome"] == IdeaStatus::Accepted.as_str() {
                render(
                    mail_id,
                    format!("Bonne nouvelle : votre idée « {title} » est retenue"),
                    vec![
                        format!("Bonjour {name},"),
                        format!("Le comité de faisabilité a retenu votre idée « {title} »."),
                        format!("Son avis : {reason}"),
                        "Vous serez informé(e) de chaque étape de sa mise en œuvre.".into(),
                    ],
                    link,
                )
            } else {
                render(
                    mail_id,
                    format!("Votre idée « {title} » n'a pas été retenue"),
                    vec![
                        format!("Bonjour {name},"),
                        format!("Le comité de faisabilité a étudié votre idée « {title} » et ne l'a pas retenue."),
                        format!("Voici pourquoi : {reason}"),
                        "Merci pour votre contribution : continuez à proposer vos idées !".into(),
                    ],
                    link,
                )
            }
        }
        Kind::IdeaAnswered => {
            let text = e.data["text"].as_str().unwrap_or_default();
            let who = answerer(e);
            render(
                mail_id,
                format!("Réponse à votre idée « {title} »"),
                vec![
                    format!("Bonjour {name},"),
                    format!("{who} a répondu à votre idée « {title} » :"),
                    text.to_owned(),
                    "Merci pour votre proposition : chaque idée reçoit une réponse.".into(),
                ],
                link,
            )
        }
        _ => {
            let note = e.data["note"].as_str().unwrap_or_default();
            let step = if e.data["status"] == IdeaStatus::Implemented.as_str() { "est réalisée" } else { "est en cours de réalisation" };
            render(
                mail_id,
                format!("Votre idée « {title} » {step}"),
                vec![format!("Bonjour {name},"), format!("Votre idée « {title} » {step}."), note.to_owned()],
                link,
            )
        }
    }
}

/// Who gave an official answer, as the mails name them.
fn answerer(e: &Event) -> &'static str {
    if e.data["by"] == crate::auth::COMMITTEE {
        "Le comité de faisabilité"
    } else {
        "L'équipe de modération"
    }
}

pub fn for_committee(s: &Settings, e: &Event, idea: &IdeaRow) -> Rendered {
    render(
        format!("{}-committee", e.event_id),
        format!("Nouvelle idée à étudier : « {} »", idea.title),
        vec![
            "Bonjour,".into(),
            format!("L'idée « {} » a atteint {} votes et attend l'avis du comité de faisabilité.", idea.title, e.data["votes"]),
            idea.body.clone(),
            "Rappel : une réponse est due à l'auteur, avec ses raisons si l'idée n'est pas retenue.".into(),
        ],
        Some(("File d'attente du comité".into(), format!("{}/review-queue", s.public_url))),
    )
}

pub fn for_voter(s: &Settings, e: &Event, idea: &IdeaRow, name: &str, member: &str) -> Rendered {
    let mail_id = format!("{}-voters", e.event_id);
    let title = &idea.title;
    let news = match e.kind {
        Kind::IdeaDecided if e.data["outcome"] == IdeaStatus::Accepted.as_str() => {
            format!("Bonne nouvelle : l'idée « {title} », que vous avez soutenue, a été retenue par le comité de faisabilité.")
        }
        Kind::IdeaDecided => format!(
            "L'idée « {title} », que vous avez soutenue, n'a pas été retenue par le comité de faisabilité. Voici pourquoi : {}",
            e.data["reason"].as_str().unwrap_or_default()
        ),
        Kind::IdeaAnswered => format!(
            "{} a répondu à l'idée « {title} », que vous suivez : {}",
            answerer(e),
            e.data["text"].as_str().unwrap_or_default()
        ),
        _ => format!("L'idée « {title} », que vous avez soutenue, avance : {}", e.data["note"].as_str().unwrap_or_default()),
    };
    render(
        mail_id.clone(),
        format!("Des nouvelles de l'idée « {title} »"),
        vec![format!("Bonjour {name},"), news],
        Some((
            "Voir l'idée".into(),
            tracked_url(s, &mail_id, member, &idea_url(s, idea)),
        )),
    )
}

/// Contest winners and selected product testers (transactional: they asked
/// to take part).
pub fn for_campaign(s: &Settings, e: &Event, name: &str, prize: Option<&str>) -> Rendered {
    if e.kind == Kind::ContestDrawn {
        let title = e.data["title"].as_str().unwrap_or_default();
        render(
            format!("{}-winners", e.event_id),
            format!("Félicitations, vous avez gagné au concours « {title} » !"),
            vec![
                format!("Bonjour {name},"),
                format!("Le tirage au sort du concours « {title} » a eu lieu : vous gagnez {}.", prize.unwrap_or("un lot")),
                "Le tirage est vérifiable : la liste des participants (sous pseudonyme), la graine secrète et son empreinte publiée avant le tirage figurent sur la page du concours.".into(),
                "Nous vous contacterons pour la remise de votre lot.".into(),
            ],
            Some(("Voir le concours".into(), format!("{}/contests/{}", s.public_url, e.data["contest_id"].as_str().unwrap_or_default()))),
        )
    } else {
        let product = e.data["product_name"].as_str().unwrap_or_default();
        render(
            format!("{}-testers", e.event_id),
            format!("Vous êtes sélectionné(e) pour tester « {product} »"),
            vec![
                format!("Bonjour {name},"),
                format!("Bonne nouvelle : vous faites partie des testeurs de « {product} »."),
                "Prochaines étapes : vous recevrez le produit en magasin sur présentation de votre carte de fidélité, puis vous pourrez publier votre avis de testeur pendant la période d'avis. Vos avis feront gagner au produit le label « Testé par la Communauté ».".into(),
            ],
            Some(("Voir le test".into(), format!("{}/product-tests/{}", s.public_url, e.data["product_test_id"].as_str().unwrap_or_default()))),
        )
    }
}

/// The author of hidden or restored content (transactional: it is about
/// their own contribution), with the moderator's reason.
pub fn for_moderation(s: &Settings, e: &Event, name: &str, member: &str) -> Rendered {
    let mail_id = format!("{}-moderation", e.event_id);
    let title = e.data["title"].as_str().unwrap_or_default();
    let excerpt = e.data["excerpt"].as_str().unwrap_or_default();
    let what = match e.data["target_type"].as_str() {
        Some("idea") => format!("votre idée « {title} »"),
        Some("comment") if !title.is_empty() => {
            format!("votre commentaire sur l'idée « {title} »")
        }
        Some("comment") => "votre commentaire".to_string(),
        _ => format!("votre avis « {title} »"),
    };
    let reason = e.data["reason"].as_str();
    let by_reports = e.data["by"] == "reports";
    let (subject, mut lines) = if e.kind == Kind::ContentRestored {
        (
            "Votre contribution est de nouveau visible".to_string(),
            vec![
                format!("Bonjour {name},"),
                format!("Après examen, un modérateur a rétabli {what} : cette contribution est de nouveau visible par la communauté."),
            ],
        )
    } else if by_reports {
        (
            "Votre contribution est masquée en attendant un modérateur".to_string(),
            vec![
                format!("Bonjour {name},"),
                format!("Plusieurs membres ont signalé {what}. Cette contribution est masquée en attendant l'examen d'un modérateur, qui décidera de la rétablir ou non."),
            ],
        )
    } else {
        (
            "Votre contribution a été masquée par un modérateur".to_string(),
            vec![
                format!("Bonjour {name},"),
                format!(
                    "Un modérateur a masqué {what} : cette contribution n'est plus visible par la communauté."
                ),
            ],
        )
    };
    if let Some(r) = reason {
        lines.push(format!("Motif : {r}"));
    }
    if !excerpt.is_empty() {
        lines.push(format!("Pour mémoire : « {excerpt} »"));
    }
    lines.push("Merci de respecter la charte de la communauté : des échanges bienveillants, utiles et sans publicité.".into());
    let link = e.idea_id.as_deref().map(|idea| {
        (
            "Voir l'idée".to_string(),
            tracked_url(
                s,
                &mail_id,
                member,
                &format!("{}/ideas/{idea}", s.public_url),
            ),
        )
    });
    render(mail_id, subject, lines, link)
}

/// The author of an idea a moderator merged into a similar one
/// (transactional: it is about their own contribution), with the reason
/// and a link to the idea it joined.
pub fn for_merged(s: &Settings, e: &Event, name: &str, member: &str) -> Rendered {
    let mail_id = format!("{}-author", e.event_id);
    let title = e.data["title"].as_str().unwrap_or_default();
    let into_title = e.data["into_title"].as_str().unwrap_or_default();
    let into = e.data["into"].as_str().unwrap_or_default();
    let mut lines = vec![
        format!("Bonjour {name},"),
        format!("Un modérateur a regroupé votre idée « {title} » avec l'idée similaire « {into_title} » : la communauté en discute désormais au même endroit."),
    ];
    if let Some(r) = e.data["reason"].as_str().filter(|r| !r.is_empty()) {
        lines.push(format!("Motif : {r}"));
    }
    lines.push(format!("Les votes que votre idée avait reçus comptent désormais pour « {into_title} », une seule fois par membre, et les membres qui la suivaient suivent maintenant cette idée. Votre idée et ses commentaires restent consultables."));
    lines.push("Merci pour votre contribution : continuez à proposer vos idées !".into());
    let link = Some((
        "Voir l'idée qui réunit les votes".to_string(),
        tracked_url(
            s,
            &mail_id,
            member,
            &format!("{}/ideas/{into}", s.public_url),
        ),
    ));
    render(
        mail_id,
        format!("Votre idée « {title} » rejoint une idée similaire"),
        lines,
        link,
    )
}

/// The loyalty programme's answer to a member's redemption (transactional:
/// it is about their own points).
pub fn for_redemption(s: &Settings, e: &Event, name: &str, member: &str) -> Rendered {
    let mail_id = format!("{}-redemption", e.event_id);
    let euros = e.data["euros"]
        .as_str()
        .unwrap_or_default()
        .replace('.', ",");
    let points = e.data["points"].as_i64().unwrap_or(0);
    let (subject, mut lines) = if e.data["status"] == "credited" {
        (
            format!("{euros} € crédités sur votre carte de fidélité"),
            vec![
                format!("Bonjour {name},"),
                format!("Vos {points} points ont été convertis : {euros} € sont crédités sur votre carte de fidélité, à utiliser lors de vos prochaines courses."),
            ],
        )
    } else {
        let mut lines = vec![
            format!("Bonjour {name},"),
            format!("Le programme de fidélité n'a pas pu créditer {euros} € sur votre carte."),
        ];
        if let Some(r) = e.data["reason"].as_str().filter(|r| !r.is_empty()) {
            lines.push(format!("Motif : {r}"));
        }
        if e.data["refunded"] == true {
            lines.push(format!(
                "Vos {points} points vous sont rendus : ils sont de nouveau sur votre solde."
            ));
        }
        (
            "Votre conversion de points n'a pas abouti".to_string(),
            lines,
        )
    };
    lines.push("Vous retrouvez vos conversions et leur état dans votre espace membre.".into());
    let link = Some((
        "Voir mes points".to_string(),
        tracked_url(
            s,
            &mail_id,
            member,
            &format!("{}/members/me/points", s.public_url),
        ),
    ));
    render(mail_id, subject, lines, link)
}

/// The loyalty programme did not recognise the member's card: it was
/// unlinked (transactional: it is about their own account). The event
/// carries the card masked, never its number.
pub fn for_card_rejected(s: &Settings, e: &Event, name: &str, member: &str) -> Rendered {
    let mail_id = format!("{}-card", e.event_id);
    let card = e.data["loyalty_card"].as_str().unwrap_or_default();
    let tail: String = card
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut lines = vec![
        format!("Bonjour {name},"),
        if tail.is_empty() {
            "Le programme de fidélité n'a pas reconnu la carte de fidélité que vous avez ajoutée : elle n'est plus associée à votre compte.".to_string()
        } else {
            format!("Le programme de fidélité n'a pas reconnu la carte de fidélité se terminant par {tail} : elle n'est plus associée à votre compte.")
        },
    ];
    if let Some(r) = e.data["reason"].as_str().filter(|r| !r.is_empty()) {
        lines.push(format!("Motif : {r}"));
    }
    lines.push("Vérifiez le numéro imprimé au dos de votre carte et ajoutez-la de nouveau depuis votre espace membre. Vos points restent sur votre solde : vous pourrez les convertir en euros une fois la carte confirmée.".into());
    let link = Some((
        "Mon espace membre".to_string(),
        tracked_url(s, &mail_id, member, &format!("{}/members/me", s.public_url)),
    ));
    render(
        mail_id,
        "Votre carte de fidélité n'a pas pu être associée à votre compte".to_string(),
        lines,
        link,
    )
}

/// A date of a campaign file (RFC 3339) as a French mail writes it:
/// "1 mars 2027" (its UTC day); as given when it does not parse.
pub(crate) fn date_fr(ts: &str) -> String {
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    match crate::domain::parse_ts(ts) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let month = MONTHS[usize::from(u8::from(t.month())) - 1];
            format!("{} {month} {}", t.day(), t.year())
        }
        None => ts.to_owned(),
    }
}

/// The mail id of community news `event_id` (`campaigns::news_event_id`:
/// one per campaign, so a campaign's announcement has one click rate).
pub fn news_mail_id(event_id: &str) -> String {
    format!("{event_id}-news")
}

/// The mail id of a challenge's results (`challenge.decided` `event_id`),
/// recorded on the challenge when they are published (`results_mail_id`).
pub fn challenge_mail_id(event_id: &str) -> String {
    format!("{event_id}-challenge")
}

/// Community news (`community.news`): a new contest, product test or
/// challenge (défi), to the members who want it
/// (`notifications.community_news`). The mail id is the event's with
/// `-news`: one click rate per announcement.
pub fn for_news(s: &Settings, e: &Event, name: &str, member: &str) -> Rendered {
    let mail_id = news_mail_id(&e.event_id);
    let text = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
    let (subject, lines, label, path) = if e.data["campaign"] == "product_test" {
        let product = text("product_name");
        let brand = text("brand");
        let slots = e.data["slots"].as_u64().unwrap_or(0);
        let who = if brand.is_empty() {
            format!("« {product} »")
        } else {
            format!("« {product} » de {brand}")
        };
        (
            format!("Nouveau test produit : {product}"),
            vec![
                format!("Bonjour {name},"),
                format!("Devenez testeur : la communauté cherche {slots} membres pour tester {who}."),
                format!(
                    "Candidatures du {} au {}. Les testeurs sont tirés au sort parmi les candidats, de façon vérifiable, et leurs avis peuvent faire gagner au produit le label « Testé par la Communauté ».",
                    date_fr(&text("applications_open_at")),
                    date_fr(&text("applications_close_at"))
                ),
            ],
            "Proposer ma candidature",
            format!("/product-tests/{}", text("product_test_id")),
        )
    } else if e.data["campaign"] == "challenge" {
        let title = text("title");
        let mut lines = vec![
            format!("Bonjour {name},"),
            format!("Un nouveau défi est lancé dans la communauté : « {title} »."),
        ];
        let question = text("question");
        if !question.is_empty() {
            lines.push(question);
        }
        if let Some(sponsor) = e.data["sponsor"].as_str().filter(|x| !x.is_empty()) {
            lines.push(format!(
                "Avec {sponsor} : à la clôture, la marque choisit les propositions gagnantes et vous répond."
            ));
        }
        lines.push(format!(
            "Proposez vos idées et votez pour celles des autres membres du {} au {}. Une proposition gagnante peut devenir un vrai produit, jusqu'en rayon.",
            date_fr(&text("opens_at")),
            date_fr(&text("closes_at"))
        ));
        (
            format!("Nouveau défi : {title}"),
            lines,
            "Relever le défi",
            format!("/challenges/{}", text("challenge_id")),
        )
    } else {
        let title = text("title");
        let mut lines = vec![
            format!("Bonjour {name},"),
            format!("Un nouveau concours vous attend dans la communauté : « {title} »."),
        ];
        let description = text("description");
        if !description.is_empty() {
            lines.push(description);
        }
        if let Some(sponsor) = e.data["sponsor"].as_str().filter(|x| !x.is_empty()) {
            lines.push(format!("Proposé par {sponsor}."));
        }
        let prizes: Vec<&str> = e.data["prizes"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        if !prizes.is_empty() {
            lines.push(format!("À gagner : {}.", prizes.join(", ")));
        }
        lines.push(format!(
            "Participation du {} au {}.",
            date_fr(&text("opens_at")),
            date_fr(&text("closes_at"))
        ));
        (
            format!("Nouveau concours : {title}"),
            lines,
            "Participer au concours",
            format!("/contests/{}", text("contest_id")),
        )
    };
    let url = tracked_url(s, &mail_id, member, &format!("{}{path}", s.public_url));
    let outro = "Vous recevez cet e-mail parce que vous suivez les nouvelles de la communauté. Pour ne plus les recevoir, désactivez « Nouvelles de la communauté » dans votre espace membre, ou utilisez le lien de désinscription ci-dessous.".to_string();
    let mut r = render(mail_id, subject, lines, Some((label.to_owned(), url)));
    r.text.push_str(&format!("\n\n{outro}"));
    r.html
        .push_str(&html_paragraphs(std::slice::from_ref(&outro)));
    r
}

/// New comments on one of the author's ideas, for the digest.
pub struct DigestIdea {
    pub idea_id: String,
    pub title: String,
    /// (commenter's display name, excerpt), oldest first.
    pub comments: Vec<(String, String)>,
}

/// The digest of new comments on an author's ideas (opt-in: `comment_digest`).
pub fn comment_digest(
    s: &Settings,
    mail_id: &str,
    name: &str,
    member: &str,
    ideas: &[DigestIdea],
) -> Rendered {
    let total: usize = ideas.iter().map(|i| i.comments.len()).sum();
    let subject = match (total, ideas) {
        (1, [one]) => format!("Un nouveau commentaire sur votre idée « {} »", one.title),
        (n, [one]) => format!("{n} nouveaux commentaires sur votre idée « {} »", one.title),
        (n, _) => format!("{n} nouveaux commentaires sur vos idées"),
    };
    let mut text = vec![
        format!("Bonjour {name},"),
        "Les membres de la communauté ont réagi à vos idées « Si j'étais… » :".to_string(),
    ];
    let mut html = html_paragraphs(&text);
    for i in ideas {
        let url = tracked_url(
            s,
            mail_id,
            member,
            &format!("{}/ideas/{}", s.public_url, i.idea_id),
        );
        let n = i.comments.len();
        let count = if n == 1 {
            "1 nouveau commentaire".to_string()
        } else {
            format!("{n} nouveaux commentaires")
        };
        let mut block = format!("« {} » — {count}", i.title);
        let mut hblock = format!("<h3>« {} » — {}</h3><ul>", esc(&i.title), esc(&count));
        for (who, excerpt) in &i.comments {
            block.push_str(&format!("\n  • {who} : « {excerpt} »"));
            hblock.push_str(&format!(
                "<li><strong>{}</strong> : « {} »</li>",
                esc(who),
                esc(excerpt)
            ));
        }
        block.push_str(&format!("\n  Répondre : {url}"));
        hblock.push_str(&format!(
            "</ul><p><a href=\"{}\">Voir les commentaires</a></p>",
            esc(&url)
        ));
        text.push(block);
        html.push_str(&hblock);
    }
    let outro = "Vous recevez ce récapitulatif parce que vous l'avez demandé. Pour ne plus le recevoir, désactivez « Récapitulatif des commentaires » dans votre espace membre, ou utilisez le lien de désinscription ci-dessous.".to_string();
    html.push_str(&html_paragraphs(std::slice::from_ref(&outro)));
    text.push(outro);
    Rendered {
        mail_id: mail_id.to_owned(),
        subject,
        text: text.join("\n\n"),
        html,
    }
}

/// The results of a co-creation challenge (défi), to a participant: the
/// author of a winning proposal, another author, or a voter.
pub fn for_challenge(s: &Settings, e: &Event, name: &str, member: &str, won: bool) -> Rendered {
    let mail_id = challenge_mail_id(&e.event_id);
    let title = e.data["title"].as_str().unwrap_or_default();
    let winners: Vec<String> = e.data["winners"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w["title"].as_str())
                .map(|t| format!("« {t} »"))
                .collect()
        })
        .unwrap_or_default();
    let by = match e.data["by"].as_str() {
        Some(b) if b.starts_with("brand:") => "La marque partenaire du défi",
        _ => "L'équipe de la communauté",
    };
    let mut lines = vec![format!("Bonjour {name},")];
    let subject = if won {
        lines.push(format!(
            "Bravo : votre proposition fait partie des gagnantes du défi « {title} » ! Des points vous sont crédités pour cette co-création."
        ));
        lines.push("Une proposition gagnante peut devenir un vrai produit : suivez ses étapes (à l'étude, en cours, en rayon) sur sa page.".to_string());
        format!("Votre proposition a gagné le défi « {title} » !")
    } else {
        lines.push(format!(
            "Le défi « {title} », auquel vous avez participé, est terminé : merci pour votre contribution à cette co-création !"
        ));
        format!("Les résultats du défi « {title} »")
    };
    if !winners.is_empty() {
        lines.push(format!("Propositions gagnantes : {}.", winners.join(", ")));
    }
    if let Some(a) = e.data["answer"].as_str().filter(|a| !a.is_empty()) {
        lines.push(format!("{by} vous répond : {a}"));
    }
    let url = format!(
        "{}/challenges/{}",
        s.public_url,
        e.data["challenge_id"].as_str().unwrap_or_default()
    );
    render(
        mail_id.clone(),
        subject,
        lines,
        Some((
            "Voir les résultats du défi".into(),
            tracked_url(s, &mail_id, member, &url),
        )),
    )
}
