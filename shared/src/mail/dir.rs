//! Local mailer: every mail is a JSON file under `{data dir}/mailbox/`,
//! listed by the local server at `GET /local/mailbox`.

use super::{Mail, MailError, Mailer};
use async_trait::async_trait;
use std::path::PathBuf;

#[derive(Clone)]
pub struct DirMailbox {
    pub dir: PathBuf,
}

impl DirMailbox {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(DirMailbox { dir })
    }

    /// Every mail, oldest first.
    pub fn list(&self) -> std::io::Result<Vec<Mail>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        Ok(names
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect())
    }
}

#[async_trait]
impl Mailer for DirMailbox {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let name = format!(
            "{}-{}.json",
            crate::domain::now().replace(':', ""),
            ulid::Ulid::new()
        );
        let bytes = serde_json::to_vec_pretty(mail).map_err(|e| MailError(e.to_string()))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| MailError(e.to_string()))?;
        tokio::fs::rename(&tmp, self.dir.join(name))
            .await
            .map_err(|e| MailError(e.to_string()))
    }
}
