//! Consumer-portal tokens: short-lived HS256 JWTs (`jsonwebtoken`) naming one application of one
//! tenant, signed with a key derived from the master key apart from the session key. With one,
//! the API answers for that application only ([`Principal::only_app`]); everything else is 404.

use chrono::{Duration, Utc};
use hookline_types::{ApiKeyScope, AppId, IdOrUid, PortalTokenIn, PortalTokenOut, TenantId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    Context,
    catalog::applications,
    error::{CoreError, CoreResult},
    tenancy::principal::{Principal, PrincipalKind},
};

const AUDIENCE: &str = "hookline-portal";
const DEFAULT_TTL_SECONDS: u32 = 3600;
const MAX_TTL_SECONDS: u32 = 86_400;

#[derive(Debug, Serialize, Deserialize)]
struct PortalClaims {
    /// The application id.
    sub: String,
    /// The tenant id.
    tid: String,
    ro: bool,
    aud: String,
    iat: i64,
    exp: i64,
}

/// True when `token` looks like a JWT rather than an API key (`hl_…`).
pub fn looks_like_token(token: &str) -> bool {
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

pub async fn mint(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    input: PortalTokenIn,
) -> CoreResult<PortalTokenOut> {
    // A portal token cannot mint more portal tokens.
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let ttl = input.expires_in.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(60..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(CoreError::invalid(&["body", "expires_in"], "must be 60 to 86400 seconds"));
    }
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let now = Utc::now();
    let expires_at = now + Duration::seconds(i64::from(ttl));
    let claims = PortalClaims {
        sub: app.id.clone(),
        tid: principal.tenant_id.to_string(),
        ro: input.read_only,
        aud: AUDIENCE.to_owned(),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(ctx.keys.portal_key()).map_err(|err| CoreError::Internal(err.into()))?,
    )
    .map_err(|err| CoreError::Internal(err.into()))?;
    Ok(PortalTokenOut {
        url: format!("/portal#{token}"),
        token,
        app_id: AppId::parse(&app.id).map_err(|err| CoreError::Internal(err.into()))?,
        read_only: input.read_only,
        expires_at,
    })
}

/// Verifies a portal token (signature, audience, expiry) into its principal.
pub fn verify(ctx: &Context, token: &str) -> CoreResult<Principal> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_audience(&[AUDIENCE]);
    let key =
        DecodingKey::from_secret(ctx.keys.portal_key()).map_err(|err| CoreError::Internal(err.into()))?;
    let claims = jsonwebtoken::decode::<PortalClaims>(token, &key, &validation)
        .map_err(|_| CoreError::Unauthenticated("the portal token is invalid or has expired"))?
        .claims;
    let tenant_id = TenantId::parse(&claims.tid)
        .map_err(|_| CoreError::Unauthenticated("the portal token is invalid or has expired"))?;
    let app_id = AppId::parse(&claims.sub)
        .map_err(|_| CoreError::Unauthenticated("the portal token is invalid or has expired"))?;
    Ok(Principal { tenant_id, kind: PrincipalKind::Portal { app_id, read_only: claims.ro } })
}
