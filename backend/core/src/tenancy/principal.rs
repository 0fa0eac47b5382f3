//! Who is calling. Built by `hookline-api`'s auth extractor from an API key or a session; services
//! take the tenant from here and nowhere else.

use hookline_types::{ApiKeyId, ApiKeyScope, AppId, Role, TenantId, UserId};

use crate::error::CoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    ApiKey {
        id: ApiKeyId,
        scopes: Vec<ApiKeyScope>,
    },
    Session {
        user_id: UserId,
        role: Role,
    },
    /// A consumer-portal token: one application of the tenant, read-only or read-write (never
    /// admin). Everything outside that application answers 404.
    Portal {
        app_id: AppId,
        read_only: bool,
    },
}

impl Principal {
    /// The strongest scope this principal holds. A session's role maps onto scopes: viewer reads,
    /// developer writes, admin and owner administer.
    pub fn max_scope(&self) -> ApiKeyScope {
        match &self.kind {
            PrincipalKind::ApiKey { scopes, .. } => scopes.iter().copied().max().unwrap_or(ApiKeyScope::Read),
            PrincipalKind::Session { role, .. } => match role {
                Role::Viewer => ApiKeyScope::Read,
                Role::Developer => ApiKeyScope::Write,
                Role::Admin | Role::Owner => ApiKeyScope::Admin,
            },
            PrincipalKind::Portal { read_only, .. } => {
                if *read_only {
                    ApiKeyScope::Read
                } else {
                    ApiKeyScope::Write
                }
            }
        }
    }

    /// The one application a portal token is limited to; `None` for tenant-wide principals.
    pub fn only_app(&self) -> Option<&AppId> {
        match &self.kind {
            PrincipalKind::Portal { app_id, .. } => Some(app_id),
            _ => None,
        }
    }

    /// `Ok` for tenant-wide principals; a portal token gets 404 for anything outside its
    /// application (`what` names the resource).
    pub fn require_tenant_wide(&self, what: &'static str) -> Result<(), CoreError> {
        match self.only_app() {
            None => Ok(()),
            Some(_) => Err(CoreError::NotFound(what)),
        }
    }

    /// `Ok` when the principal holds `needed` or a stronger scope.
    pub fn require(&self, needed: ApiKeyScope) -> Result<(), CoreError> {
        if self.max_scope() >= needed {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                code: "insufficient_scope",
                detail: format!("this credential lacks the {needed:?} scope").to_lowercase(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NewId;

    fn key(scopes: &[ApiKeyScope]) -> Principal {
        Principal {
            tenant_id: TenantId::new_id(),
            kind: PrincipalKind::ApiKey { id: ApiKeyId::new_id(), scopes: scopes.to_vec() },
        }
    }

    #[test]
    fn scopes_are_ordered_read_write_admin() {
        assert!(key(&[ApiKeyScope::Read]).require(ApiKeyScope::Read).is_ok());
        assert!(key(&[ApiKeyScope::Read]).require(ApiKeyScope::Write).is_err());
        assert!(key(&[ApiKeyScope::Write]).require(ApiKeyScope::Read).is_ok());
        assert!(key(&[ApiKeyScope::Write]).require(ApiKeyScope::Admin).is_err());
        assert!(key(&[ApiKeyScope::Read, ApiKeyScope::Admin]).require(ApiKeyScope::Write).is_ok());
        assert!(key(&[]).require(ApiKeyScope::Write).is_err());
    }

    #[test]
    fn session_roles_map_onto_scopes() {
        let session = |role| Principal {
            tenant_id: TenantId::new_id(),
            kind: PrincipalKind::Session { user_id: UserId::new_id(), role },
        };
        assert!(session(Role::Viewer).require(ApiKeyScope::Write).is_err());
        assert!(session(Role::Developer).require(ApiKeyScope::Write).is_ok());
        assert!(session(Role::Developer).require(ApiKeyScope::Admin).is_err());
        assert!(session(Role::Owner).require(ApiKeyScope::Admin).is_ok());
    }
}
