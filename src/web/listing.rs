//! The query of `GET /api/jobs` (a client's own jobs, newest first) and its cursor.
//!
//! Parameters: `limit` (1 to 100, default 20), `cursor` (from the previous page's `next`),
//! `status` (one or more of the five, repeated or comma-separated), `created_after` and
//! `created_before` (RFC 3339, exclusive, compared to the millisecond). Anything else, or a
//! value that cannot be used, is a 400 naming the parameter: a misspelt filter must not quietly
//! list everything.
//!
//! The cursor is opaque to clients: the base64url of `1|{created_at}|{id}` of the last job of
//! the page, the keyset position the next page starts after. A cursor that does not decode to
//! exactly that (a tampered or truncated one) is refused with 400 `invalid_cursor`; a decodable
//! one can only move the caller within their own jobs, as the owner comes from the request's
//! credentials, never from the cursor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::errors::ApiError;
use crate::jobs::model::{JobRow, Listing, Owner, Status};
use crate::timestamp::Timestamp;

/// Jobs per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 20;
/// Most jobs per page.
pub const MAX_LIMIT: i64 = 100;
/// The version of the cursor's layout, its first field.
const CURSOR_VERSION: &str = "1";

/// A parsed `GET /api/jobs` query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: i64,
    pub statuses: Vec<Status>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// `(created_at, id)` of the previous page's last job.
    pub after: Option<(Timestamp, String)>,
}

fn invalid(code: &'static str, message: String) -> ApiError {
    ApiError::Invalid { code, message }
}

impl ListQuery {
    /// The query string of a request; a 400 naming the first parameter that cannot be used.
    pub fn parse(query: &str) -> Result<ListQuery, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        let mut parsed = ListQuery {
            limit: DEFAULT_LIMIT,
            statuses: Vec::new(),
            created_after: None,
            created_before: None,
            after: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &pairs {
            if name != "status" && seen.contains(&name.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "the parameter {name} is given more than once"
                )));
            }
            seen.push(name);
            match name.as_str() {
                "limit" => parsed.limit = limit(value)?,
                "cursor" => parsed.after = Some(decode_cursor(value)?),
                "status" => {
                    for status in value.split(',').map(str::trim) {
                        let status = status.parse::<Status>().map_err(|_| {
                            invalid(
                                "invalid_status",
                                format!(
                                    "status {status:?} is not one of queued, running, \
                                     succeeded, failed, cancelled"
                                ),
                            )
                        })?;
                        if !parsed.statuses.contains(&status) {
                            parsed.statuses.push(status);
                        }
                    }
                }
                "created_after" => parsed.created_after = Some(date(name, value)?),
                "created_before" => parsed.created_before = Some(date(name, value)?),
                other => {
                    return Err(invalid(
                        "unknown_parameter",
                        format!(
                            "unknown parameter {other:?}: use limit, cursor, status, \
                             created_after or created_before"
                        ),
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// The page of `owner`'s jobs this query asks for, one more than its limit (the extra one
    /// says whether there is a next page).
    pub fn listing<'a>(&self, owner: Owner<'a>) -> Listing<'a> {
        Listing {
            owner,
            statuses: self.statuses.clone(),
            created_after: self.created_after,
            created_before: self.created_before,
            after: self.after.clone(),
            limit: self.limit + 1,
        }
    }

    /// The URL of the page after the one that ends with `last`: the same filters and limit,
    /// and the cursor of `last`.
    pub fn next_url(&self, last: &JobRow) -> String {
        let mut pairs: Vec<(&str, String)> = vec![("limit", self.limit.to_string())];
        pairs.extend(
            self.statuses
                .iter()
                .map(|s| ("status", s.as_str().to_owned())),
        );
        if let Some(after) = self.created_after {
            pairs.push(("created_after", after.to_string()));
        }
        if let Some(before) = self.created_before {
            pairs.push(("created_before", before.to_string()));
        }
        pairs.push(("cursor", encode_cursor(last)));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("/api/jobs?{query}")
    }
}

fn limit(value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            invalid(
                "invalid_limit",
                format!("limit must be a whole number from 1 to {MAX_LIMIT}, not {value:?}"),
            )
        })
}

fn date(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.trim().parse::<Timestamp>().map_err(|_| {
        invalid(
            "invalid_date",
            format!(
                "{name} must be an RFC 3339 date and time such as 2026-12-10T08:00:00Z, not \
                 {value:?}"
            ),
        )
    })
}

/// The cursor that resumes a listing after `job`.
pub fn encode_cursor(job: &JobRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}|{}|{}", job.created_at, job.id))
}

/// The keyset position a cursor holds; 400 `invalid_cursor` for anything this API did not
/// make (only the exact layout is taken: a timestamp in its stored form, a job id).
fn decode_cursor(cursor: &str) -> Result<(Timestamp, String), ApiError> {
    let refused = || {
        invalid(
            "invalid_cursor",
            "the cursor is not one this API gave out: use the `next` link of the previous page, \
             or start again without a cursor"
                .into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let mut fields = text.split('|');
    let (Some(CURSOR_VERSION), Some(at), Some(id), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(refused());
    };
    let at_parsed: Timestamp = at.parse().map_err(|_| refused())?;
    let id_parsed = uuid::Uuid::parse_str(id).map_err(|_| refused())?;
    if at_parsed.to_string() != at || id_parsed.to_string() != id {
        return Err(refused());
    }
    Ok((at_parsed, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: ApiError) -> &'static str {
        e.code()
    }

    #[test]
    fn no_parameters_mean_twenty_of_every_status_from_the_newest() {
        let q = ListQuery::parse("").unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(q.statuses.is_empty() && q.after.is_none());
        assert!(q.created_after.is_none() && q.created_before.is_none());
    }

    #[test]
    fn statuses_are_repeated_or_comma_separated_and_dates_rfc_3339() {
        let q = ListQuery::parse(
            "status=queued,running&status=failed&status=queued&limit=100\
             &created_after=2026-12-10T08:00:00%2B01:00&created_before=2026-12-11T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            q.statuses,
            [Status::Queued, Status::Running, Status::Failed]
        );
        assert_eq!(q.limit, 100);
        assert_eq!(
            q.created_after.unwrap().to_string(),
            "2026-12-10T07:00:00.000Z"
        );
        assert!(q.created_before.is_some());
    }

    #[test]
    fn each_unusable_parameter_gets_its_own_code() {
        for (query, expected) in [
            ("limit=0", "invalid_limit"),
            ("limit=101", "invalid_limit"),
            ("limit=ten", "invalid_limit"),
            ("limit=", "invalid_limit"),
            ("status=done", "invalid_status"),
            ("status=", "invalid_status"),
            ("created_after=yesterday", "invalid_date"),
            ("created_before=2026-12-10", "invalid_date"),
            ("cursor=abc", "invalid_cursor"),
            ("cursor=", "invalid_cursor"),
            ("sort=asc", "unknown_parameter"),
            ("limit=5&limit=6", "bad_request"),
        ] {
            assert_eq!(
                code(ListQuery::parse(query).unwrap_err()),
                expected,
                "{query}"
            );
        }
    }

    #[test]
    fn a_cursor_resumes_after_its_job_and_a_tampered_one_is_refused() {
        let mut job = crate::jobs::model::tests::row();
        job.created_at = "2026-12-10T10:00:00.123Z".parse().unwrap();
        let cursor = encode_cursor(&job);
        let q = ListQuery::parse(&format!("cursor={cursor}")).unwrap();
        assert_eq!(q.after, Some((job.created_at, job.id.clone())));
        let raw = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for tampered in [
            format!("{cursor}x"),
            cursor[..cursor.len() - 2].to_owned(),
            raw(&format!("2|{}|{}", job.created_at, job.id)),
            raw(&format!("1|2026-12-10T10:00:00Z|{}", job.id)),
            raw(&format!("1|{}|not-a-uuid", job.created_at)),
            raw(&format!("1|{}|{}|x", job.created_at, job.id)),
        ] {
            let e = ListQuery::parse(&format!("cursor={tampered}")).unwrap_err();
            assert_eq!(code(e), "invalid_cursor", "{tampered}");
        }
    }

    #[test]
    fn the_next_url_keeps_the_filters_and_the_limit_and_adds_the_cursor() {
        let q =
            ListQuery::parse("status=failed&limit=5&created_after=2026-12-10T00:00:00Z").unwrap();
        let job = crate::jobs::model::tests::row();
        let next = q.next_url(&job);
        assert!(
            next.starts_with(
                "/api/jobs?limit=5&status=failed&created_after=2026-12-10T00%3A00%3A00.000Z&cursor="
            ),
            "{next}"
        );
        let again = ListQuery::parse(next.split_once('?').unwrap().1).unwrap();
        assert_eq!(again.after, Some((job.created_at, job.id)));
        assert_eq!(again.statuses, q.statuses);
    }
}
