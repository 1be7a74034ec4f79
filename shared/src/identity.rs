//! The identity provider's side of a member. On AWS it is the Cognito user
//! pool: a member's id is their Cognito user's `sub`, which is also the
//! user's username (the pool signs in by email, so Cognito names each user
//! by its `sub`). Erasure (`DELETE /members/me`, gdpr.rs) deletes the
//! member's Cognito user once their data is erased: no sign-in is left for
//! an erased member, and the address may join again as a new member.
//! Locally there is no identity provider (the local server signs its own
//! tokens), so nothing is deleted.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("the identity provider refused: {0}")]
pub struct DirectoryError(pub String);

/// The members' sign-ins.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Deletes the member's sign-in. A member who has none (already deleted)
    /// is done: erasure is idempotent.
    async fn delete_member(&self, member_id: &str) -> Result<(), DirectoryError>;
}

/// The IAM action [`CognitoDirectory`]'s request needs, on the user pool.
pub const DELETE_ACTION: &str = "cognito-idp:AdminDeleteUser";

/// Deletes the member's sign-in through the port, recording the call for
/// the least-privilege proof ([`crate::access`]).
pub async fn delete_member(
    directory: &dyn Directory,
    member_id: &str,
) -> Result<(), DirectoryError> {
    crate::access::record(DELETE_ACTION, "userpool", None, None);
    directory.delete_member(member_id).await
}

/// The stack's Cognito user pool (`USER_POOL_ID`).
pub struct CognitoDirectory {
    pub client: aws_sdk_cognitoidentityprovider::Client,
    pub user_pool_id: String,
}

impl CognitoDirectory {
    pub fn from_env(client: aws_sdk_cognitoidentityprovider::Client) -> Result<Self, String> {
        let user_pool_id = std::env::var("USER_POOL_ID").map_err(|_| "USER_POOL_ID is not set")?;
        Ok(CognitoDirectory {
            client,
            user_pool_id,
        })
    }
}

#[async_trait]
impl Directory for CognitoDirectory {
    async fn delete_member(&self, member_id: &str) -> Result<(), DirectoryError> {
        match self
            .client
            .admin_delete_user()
            .user_pool_id(&self.user_pool_id)
            .username(member_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_user_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(DirectoryError(
                aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }
}
