//! Dashboard accounts: signup (creates the tenant and its owner), login, and the session token.
//!
//! A session is an HS256 JWT (`jsonwebtoken`) signed with a key derived from the master key,
//! naming a row of `sessions` (`sid`) that log-out revokes: a copied token stops working at
//! log-out, not when it expires. It carries a random CSRF token; state-changing requests
//! authenticated by the session cookie must echo that token in the `X-CSRF-Token` header (the
//! cookie is also `SameSite=Strict`).

use chrono::{Duration, Utc};
use hookline_types::{LoginIn, Role, SessionOut, SignupIn, TenantId, UserId, UserOut};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::{
    Context, crypto,
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::{sessions, tenants, users},
    store::is_unique_violation,
    tenancy::principal::{Principal, PrincipalKind},
    tenancy::tenants as tenant_service,
};

pub const MIN_PASSWORD_LEN: usize = 10;

/// Sign-in throttling (token buckets, per process): attempts per client address and, for log-in,
/// per account (an unknown email has a bucket like a known one: the answers do not differ).
/// A bucket holds `burst` attempts and refills `per_minute` a minute.
struct Throttle {
    what: &'static str,
    burst: u32,
    per_minute: f64,
}

const LOGIN_PER_ADDRESS: Throttle =
    Throttle { what: "log-in attempts from this address", burst: 20, per_minute: 10.0 };
const LOGIN_PER_ACCOUNT: Throttle =
    Throttle { what: "log-in attempts for this account", burst: 10, per_minute: 5.0 };
const SIGNUP_PER_ADDRESS: Throttle =
    Throttle { what: "sign-ups from this address", burst: 10, per_minute: 10.0 / 60.0 };

impl Throttle {
    fn take(&self, ctx: &Context, key: &str) -> CoreResult<()> {
        let taken = ctx.caches.sign_in.take_at(key, self.per_minute / 60.0, self.burst);
        if taken.allowed {
            return Ok(());
        }
        Err(CoreError::TooManyRequests {
            code: "rate_limited",
            detail: format!("too many {}: try again in {} s", self.what, taken.retry_after_seconds),
            retry_after_seconds: taken.retry_after_seconds,
            quota_limit: None,
        })
    }
}

/// Argon2 on the blocking pool: one hash takes tens of milliseconds of CPU, which on an async
/// worker would stall every request sharing it.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> CoreResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| CoreError::Internal(err.into()))
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    /// The user id.
    sub: String,
    /// The tenant id.
    tid: String,
    role: Role,
    csrf: String,
    /// The `sessions` row: revoked at log-out.
    sid: String,
    iat: i64,
    exp: i64,
}

/// A signed-in session: what the API sets as the cookie, and what it returns in the body.
pub struct Session {
    pub token: String,
    pub out: SessionOut,
    pub max_age_seconds: i64,
}

/// A verified session token.
pub struct VerifiedSession {
    pub principal: Principal,
    pub csrf_token: String,
}

fn parse_role(role: &str) -> CoreResult<Role> {
    serde_json::from_value(serde_json::Value::String(role.to_owned()))
        .map_err(|_| CoreError::Internal(anyhow::anyhow!("stored role {role:?} is unknown")))
}

fn user_out(user: &users::Model) -> CoreResult<UserOut> {
    Ok(UserOut {
        id: UserId::parse(&user.id).map_err(|err| CoreError::Internal(err.into()))?,
        email: user.email.clone(),
        role: parse_role(&user.role)?,
        created_at: user.created_at,
    })
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

async fn issue(ctx: &Context, user: &users::Model, tenant: tenants::Model) -> CoreResult<Session> {
    let ttl = Duration::hours(i64::from(ctx.config.session_ttl_hours));
    let now = Utc::now();
    let csrf = crypto::random_token();
    let user_out = user_out(user)?;
    let sid = format!("sess_{}", crypto::random_token());
    sessions::ActiveModel {
        id: Set(sid.clone()),
        tenant_id: Set(user.tenant_id.clone()),
        user_id: Set(user.id.clone()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        revoked_at: Set(None),
    }
    .insert(&ctx.db.writer)
    .await?;
    let claims = SessionClaims {
        sub: user.id.clone(),
        tid: user.tenant_id.clone(),
        role: user_out.role,
        csrf: csrf.clone(),
        sid,
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(ctx.keys.session_key()).map_err(|err| CoreError::Internal(err.into()))?,
    )
    .map_err(|err| CoreError::Internal(err.into()))?;
    Ok(Session {
        token,
        out: SessionOut { user: user_out, tenant: tenant_service::to_out(tenant)?, csrf_token: csrf },
        max_age_seconds: ttl.num_seconds(),
    })
}

/// Signs up from `client` (the caller's address, for throttling).
pub async fn signup(ctx: &Context, input: SignupIn, client: std::net::IpAddr) -> CoreResult<Session> {
    SIGNUP_PER_ADDRESS.take(ctx, &format!("signup:{client}"))?;
    let email = normalize_email(&input.email);
    let mut errors = Errors::default();
    if !(email.len() <= 254 && email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))) {
        errors.push(&["body", "email"], "must be an email address");
    }
    if input.password.chars().count() < MIN_PASSWORD_LEN {
        errors.push(&["body", "password"], format!("must be at least {MIN_PASSWORD_LEN} characters long"));
    }
    tenant_service::validate_name(&mut errors, &["body", "organization_name"], &input.organization_name);
    errors.into_result()?;

    let password = input.password.clone();
    let password_hash = blocking(move || crypto::hash_password(&password)).await??;
    let txn = ctx.db.begin_write().await?;
    let tenant =
        tenant_service::insert(&txn, &input.organization_name, &email, tenant_service::DEFAULT_PLAN).await?;
    let user = users::ActiveModel {
        id: Set(UserId::new_id().into_string()),
        tenant_id: Set(tenant.id.clone()),
        email: Set(email),
        password_hash: Set(Some(password_hash)),
        role: Set("owner".to_owned()),
        created_at: Set(Utc::now()),
    };
    let user = match user.insert(&txn).await {
        Ok(user) => user,
        Err(err) if is_unique_violation(&err) => {
            return Err(CoreError::conflict("email_taken", "an account with this email already exists"));
        }
        Err(err) => return Err(err.into()),
    };
    txn.commit().await?;
    issue(ctx, &user, tenant).await
}

/// Logs in from `client` (the caller's address, for throttling).
pub async fn login(ctx: &Context, input: LoginIn, client: std::net::IpAddr) -> CoreResult<Session> {
    let email = normalize_email(&input.email);
    // The account's bucket first: attempts it refuses do not use up the address's.
    LOGIN_PER_ACCOUNT.take(ctx, &format!("login-account:{email}"))?;
    LOGIN_PER_ADDRESS.take(ctx, &format!("login-address:{client}"))?;
    let user = users::Entity::find().filter(users::Column::Email.eq(email)).one(&ctx.db.conn).await?;
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| crypto::dummy_password_hash().to_owned());
    let password = input.password.clone();
    let password_ok = blocking(move || crypto::verify_password(&password, &hash)).await?;
    let Some(user) = user.filter(|u| password_ok && u.password_hash.is_some()) else {
        return Err(CoreError::Unauthenticated("wrong email or password"));
    };
    let tenant = tenants::Entity::find_by_id(user.tenant_id.as_str())
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::Unauthenticated("wrong email or password"))?;
    issue(ctx, &user, tenant).await
}

fn decode(ctx: &Context, token: &str) -> CoreResult<SessionClaims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let key =
        DecodingKey::from_secret(ctx.keys.session_key()).map_err(|err| CoreError::Internal(err.into()))?;
    Ok(jsonwebtoken::decode::<SessionClaims>(token, &key, &validation)
        .map_err(|_| CoreError::Unauthenticated("the session is invalid or has expired: log in again"))?
        .claims)
}

/// Verifies a session token, that its session is neither revoked nor expired, and that its user
/// still exists.
pub async fn verify(ctx: &Context, token: &str) -> CoreResult<VerifiedSession> {
    let claims = decode(ctx, token)?;
    sessions::Entity::find_by_id(claims.sid.as_str())
        .filter(sessions::Column::UserId.eq(claims.sub.as_str()))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::Unauthenticated("the session has ended: log in again"))?;
    let user = users::Entity::find_by_id(claims.sub.as_str())
        .filter(users::Column::TenantId.eq(claims.tid.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::Unauthenticated("the session's user no longer exists"))?;
    let role = parse_role(&user.role)?;
    Ok(VerifiedSession {
        principal: Principal {
            tenant_id: TenantId::parse(&user.tenant_id).map_err(|err| CoreError::Internal(err.into()))?,
            kind: PrincipalKind::Session {
                user_id: UserId::parse(&user.id).map_err(|err| CoreError::Internal(err.into()))?,
                role,
            },
        },
        csrf_token: claims.csrf,
    })
}

/// Ends the session `token` names (when it is valid): its token is refused from now on, wherever
/// a copy of it is.
pub async fn logout(ctx: &Context, token: &str) -> CoreResult<()> {
    let Ok(claims) = decode(ctx, token) else { return Ok(()) };
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(sessions::Column::Id.eq(claims.sid.as_str()))
        .filter(sessions::Column::UserId.eq(claims.sub.as_str()))
        .exec(&ctx.db.writer)
        .await?;
    Ok(())
}

/// Deletes sessions that expired (revoked or not); returns how many. Run by the maintenance job.
pub async fn purge_sessions(ctx: &Context) -> CoreResult<u64> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lt(Utc::now()))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}

/// The current session's user and tenant.
pub async fn me(ctx: &Context, principal: &Principal, csrf_token: String) -> CoreResult<SessionOut> {
    let PrincipalKind::Session { user_id, .. } = &principal.kind else {
        return Err(CoreError::Forbidden {
            code: "session_required",
            detail: "this route needs a dashboard session, not an API key".to_owned(),
        });
    };
    let user = users::Entity::find_by_id(user_id.as_str())
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("user"))?;
    Ok(SessionOut {
        user: user_out(&user)?,
        tenant: tenant_service::get(ctx, &principal.tenant_id).await?,
        csrf_token,
    })
}
