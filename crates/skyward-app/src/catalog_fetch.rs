//! `skyward catalog fetch`: a provider's public price source read into a
//! Skyward catalog. The paging, the throttling answers and the checks are
//! here; the HTTP itself is the caller's ([`Http`]), so the same steps run
//! against the provider and against recorded responses.

use crate::AppError;
use serde::Serialize;
use skyward_catalog::azure;
use skyward_model::Offering;
use std::collections::BTreeMap;
use std::time::Duration;

/// One answer of a GET.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when the answer gave one.
    pub retry_after_s: Option<u64>,
    pub body: Vec<u8>,
}

/// The caller's HTTP: a GET, and a wait (a throttled answer is retried
/// after it).
pub trait Http {
    /// A GET; a body past `max_bytes` is an error, refused while read.
    fn get(&mut self, url: &str, max_bytes: usize) -> Result<Reply, String>;
    fn sleep(&mut self, d: Duration);
}

/// Pages read at most (the Azure VM meters of every region are a few
/// hundred pages).
pub const PAGES_MAX: usize = 10_000;
/// Attempts at one page when the answer is 429 or 503.
pub const ATTEMPTS_MAX: u32 = 6;
/// Longest wait honoured from a `Retry-After`.
pub const RETRY_AFTER_MAX_S: u64 = 60;

/// What a fetch read, kept and left out: written next to the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub provider: String,
    pub source_url: String,
    /// RFC 3339, UTC.
    pub fetched_at: String,
    pub regions: Vec<String>,
    pub pages: usize,
    pub items_read: usize,
    pub throttled_retries: u32,
    pub offerings_kept: usize,
    /// Items left out, by reason.
    pub items_dropped: BTreeMap<String, u64>,
}

/// `scheme://host:port` of a URL (default ports written out), for the
/// same-origin check of next-page links.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            (h.to_string(), p.parse().ok()?)
        }
        _ => (
            authority.to_string(),
            match scheme {
                "https" => 443,
                "http" => 80,
                _ => return None,
            },
        ),
    };
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
}

/// A URL as it may be shown: the value of a `key=` parameter (an API
/// key) replaced, so that no message, log or provenance carries it.
pub fn shown(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("key") => format!("{k}=REDACTED"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

/// Reads one page: its items and the next page's link.
type ReadPage<'a, T> = dyn FnMut(&[u8]) -> Result<(Vec<T>, Option<String>), String> + 'a;

/// A fetch in progress: the HTTP, the endpoint's origin (next-page links
/// must stay on it), and what was read so far.
struct Listing<'a> {
    http: &'a mut dyn Http,
    /// The API's address, as given.
    endpoint: String,
    endpoint_origin: (String, String, u16),
    retries: u32,
    pages_read: usize,
    progress: &'a mut dyn FnMut(usize, usize),
}

impl<'a> Listing<'a> {
    /// A listing of the API at `endpoint` (an http(s) address without a
    /// query: each provider's reader appends its own).
    fn open(
        http: &'a mut dyn Http,
        endpoint: &str,
        progress: &'a mut dyn FnMut(usize, usize),
    ) -> Result<Listing<'a>, AppError> {
        let endpoint_origin = origin(endpoint).ok_or_else(|| {
            AppError::field(
                "endpoint",
                &format!("'{endpoint}' is not an http(s):// address"),
            )
        })?;
        if endpoint.contains(['?', '#']) {
            return Err(AppError::field(
                "endpoint",
                "has a query or fragment; give the API's address alone",
            ));
        }
        Ok(Listing {
            http,
            endpoint: endpoint.to_string(),
            endpoint_origin,
            retries: 0,
            pages_read: 0,
            progress,
        })
    }

    /// What this listing read, kept and left out.
    fn provenance<K: ToString>(
        &self,
        provider: &str,
        fetched_at: &str,
        regions: &[String],
        items_read: usize,
        offerings_kept: usize,
        dropped: BTreeMap<K, u64>,
    ) -> Provenance {
        Provenance {
            provider: provider.into(),
            source_url: self.endpoint.clone(),
            fetched_at: fetched_at.to_string(),
            regions: regions.to_vec(),
            pages: self.pages_read,
            items_read,
            throttled_retries: self.retries,
            offerings_kept,
            items_dropped: dropped
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

/// The pages of one listing, from `first`, each through `read`.
fn pages<T>(
    l: &mut Listing<'_>,
    first: String,
    read: &mut ReadPage<'_, T>,
    out: &mut Vec<T>,
) -> Result<(), AppError> {
    let mut url = Some(first);
    while let Some(u) = url.take() {
        let body = fetch_ok(l, &u, PAGE_BYTES_MAX)?;
        let (items, next) = read(&body)
            .map_err(|m| AppError::Io(format!("page {} ({}): {m}", l.pages_read, shown(&u))))?;
        out.extend(items);
        (l.progress)(l.pages_read, out.len());
        if let Some(n) = next {
            if origin(&n).as_ref() != Some(&l.endpoint_origin) {
                return Err(AppError::Io(format!(
                    "page {} ({}): its next-page link '{}' leaves {}",
                    l.pages_read,
                    shown(&u),
                    n.chars().take(200).collect::<String>(),
                    l.endpoint_origin.1
                )));
            }
            url = Some(n);
        }
    }
    Ok(())
}

/// Largest page of a paged API, and largest single file (a region's EC2
/// offer file is a few hundred MB).
pub const PAGE_BYTES_MAX: usize = 64 << 20;
pub const FILE_BYTES_MAX: usize = 2 << 30;

/// One GET that must answer 200, retried after a 429 or 503 (its
/// `Retry-After`, capped, or 1, 2, 4… s) up to [`ATTEMPTS_MAX`] times;
/// counted as the next page read.
fn fetch_ok(l: &mut Listing<'_>, u: &str, max_bytes: usize) -> Result<Vec<u8>, AppError> {
    if l.pages_read >= PAGES_MAX {
        return Err(AppError::Io(format!("more than {PAGES_MAX} pages")));
    }
    let n = l.pages_read + 1;
    let shown_url = shown(u);
    let u_shown = &shown_url;
    let mut attempt = 0;
    let reply = loop {
        attempt += 1;
        let r = l.http.get(u, max_bytes).map_err(|e| {
            AppError::Io(format!("page {n} ({u_shown}): {}", e.replace(u, u_shown)))
        })?;
        if (r.status == 429 || r.status == 503) && attempt < ATTEMPTS_MAX {
            l.retries += 1;
            let wait = r
                .retry_after_s
                .unwrap_or(1 << (attempt - 1))
                .min(RETRY_AFTER_MAX_S);
            l.http.sleep(Duration::from_secs(wait));
            continue;
        }
        break r;
    };
    if reply.status != 200 {
        let text: String = String::from_utf8_lossy(&reply.body)
            .chars()
            .take(200)
            .collect();
        return Err(AppError::Io(format!(
            "page {n} ({u_shown}): HTTP {}{}: {text}",
            reply.status,
            if reply.status == 429 || reply.status == 503 {
                format!(" after {ATTEMPTS_MAX} attempts")
            } else {
                String::new()
            }
        )));
    }
    l.pages_read = n;
    Ok(reply.body)
}

/// Azure's VM prices (pay-as-you-go and spot) from the Retail Prices
/// API at `endpoint`, of `regions` (all when empty), as offerings of the
/// SKUs `known` maps to accelerators.
pub fn azure(
    http: &mut dyn Http,
    endpoint: &str,
    regions: &[String],
    known: &azure::Known,
    fetched_at: &str,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Offering>, Provenance), AppError> {
    let mut listing = Listing::open(http, endpoint, progress)?;
    let filters: Vec<String> = if regions.is_empty() {
        vec!["serviceName eq 'Virtual Machines' and priceType eq 'Consumption'".to_string()]
    } else {
        regions
            .iter()
            .map(|r| {
                format!("serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{r}'")
            })
            .collect()
    };
    let mut items = Vec::new();
    for f in filters {
        let first = format!("{endpoint}?$filter={}", crate::query::encode_value(&f));
        pages(
            &mut listing,
            first,
            &mut |body| azure::parse_page(body).map(|p| (p.items, p.next)),
            &mut items,
        )?;
    }
    let source = format!("Azure Retail Prices API ({endpoint}) fetched {fetched_at}");
    let (offerings, dropped) = azure::offerings(&items, known, &source);
    let p = listing.provenance(
        "azure",
        fetched_at,
        regions,
        items.len(),
        offerings.len(),
        dropped,
    );
    Ok((offerings, p))
}

/// AWS's on-demand EC2 prices from the Price List bulk API at
/// `endpoint`: the region index, then each region's offer file (of
/// `regions`, all when empty).
pub fn aws(
    http: &mut dyn Http,
    endpoint: &str,
    regions: &[String],
    known: &skyward_catalog::Known,
    fetched_at: &str,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Offering>, Provenance), AppError> {
    use skyward_catalog::aws;
    let endpoint = endpoint.trim_end_matches('/');
    let mut l = Listing::open(http, endpoint, progress)?;
    let index_url = format!("{endpoint}{}", aws::REGION_INDEX);
    let body = fetch_ok(&mut l, &index_url, PAGE_BYTES_MAX)?;
    let index = aws::parse_region_index(&body)
        .map_err(|m| AppError::Io(format!("page 1 ({index_url}): {m}")))?;
    let wanted: Vec<(String, String)> = if regions.is_empty() {
        index
    } else {
        let mut v = Vec::new();
        for r in regions {
            match index.iter().find(|(code, _)| code == r) {
                Some(x) => v.push(x.clone()),
                None => {
                    return Err(AppError::field(
                        "regions",
                        &format!(
                            "'{r}' is not in the EC2 price list's region index ({} regions there)",
                            index.len()
                        ),
                    ))
                }
            }
        }
        v
    };
    let source = format!("AWS Price List bulk API ({endpoint}) fetched {fetched_at}");
    let mut offerings = Vec::new();
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    let mut products = 0usize;
    for (region, path) in &wanted {
        let url = format!("{endpoint}{path}");
        let body = fetch_ok(&mut l, &url, FILE_BYTES_MAX)?;
        let (got, left, read) = aws::parse_offer(&body, region, known, &source)
            .map_err(|m| AppError::Io(format!("page {} ({url}): {m}", l.pages_read)))?;
        products += read;
        for (k, v) in left {
            *dropped.entry(k.to_string()).or_insert(0) += v;
        }
        offerings.extend(got);
        (l.progress)(l.pages_read, products);
    }
    let p = l.provenance(
        "aws",
        fetched_at,
        regions,
        products,
        offerings.len(),
        dropped,
    );
    Ok((offerings, p))
}

/// GCP's accelerator machine prices (on-demand and spot) from the Cloud
/// Billing Catalog API's Compute Engine SKUs at `endpoint`, read with
/// `api_key`, of `regions` (all when empty). The key is never shown:
/// not in messages, not in the provenance.
pub fn gcp(
    http: &mut dyn Http,
    endpoint: &str,
    api_key: &str,
    regions: &[String],
    known: &[skyward_catalog::gcp_billing::Machine],
    fetched_at: &str,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Offering>, Provenance), AppError> {
    use skyward_catalog::gcp_billing;
    if api_key.is_empty()
        || api_key.len() > 256
        || !api_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AppError::field(
            "api key",
            "is empty, longer than 256 characters, or has characters other than letters, digits, - and _",
        ));
    }
    let base = format!(
        "{endpoint}?key={}&currencyCode=USD&pageSize=5000",
        crate::query::encode_value(api_key)
    );
    let mut listing = Listing::open(http, endpoint, progress)?;
    let mut skus = Vec::new();
    let mut tokens = std::collections::BTreeSet::new();
    pages(
        &mut listing,
        base.clone(),
        &mut |body| {
            let p = gcp_billing::parse_page(body)?;
            let next = match p.next_token {
                None => None,
                Some(t) if t.len() > 4096 => return Err("nextPageToken is over 4 KiB".into()),
                Some(t) if !tokens.insert(t.clone()) => {
                    return Err(
                        "the same nextPageToken came twice (the listing would not end)".into(),
                    )
                }
                Some(t) => Some(format!(
                    "{base}&pageToken={}",
                    crate::query::encode_value(&t)
                )),
            };
            Ok((p.skus, next))
        },
        &mut skus,
    )?;
    let source = format!("GCP Cloud Billing Catalog API ({endpoint}) fetched {fetched_at}");
    let (offerings, dropped) = gcp_billing::offerings(&skus, known, regions, &source);
    let p = listing.provenance(
        "gcp",
        fetched_at,
        regions,
        skus.len(),
        offerings.len(),
        dropped,
    );
    Ok((offerings, p))
}

/// The catalog a fetch writes: `fetched` in place of `provider`'s
/// offerings in `base` (in the regions fetched when `regions` were asked
/// for, in every region when not), or `fetched` alone with `only`.
pub fn merge(
    base: Vec<Offering>,
    fetched: Vec<Offering>,
    provider: &str,
    regions: &[String],
    only: bool,
) -> Vec<Offering> {
    let fetched_regions: std::collections::BTreeSet<&str> =
        fetched.iter().map(|o| o.region.region.as_str()).collect();
    let mut out: Vec<Offering> = if only {
        Vec::new()
    } else {
        base.into_iter()
            .filter(|o| {
                o.region.provider != provider
                    || (!regions.is_empty() && !fetched_regions.contains(o.region.region.as_str()))
            })
            .collect()
    };
    out.extend(fetched);
    out
}

/// Regions as given on the command line: lower-case names, no quotes.
pub fn check_regions(regions: &[String]) -> Result<Vec<String>, AppError> {
    regions
        .iter()
        .map(|r| {
            let r = r.trim().to_ascii_lowercase();
            if r.is_empty()
                || r.len() > 64
                || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                Err(AppError::field(
                    "regions",
                    &format!("'{r}' is not a region name (letters, digits, -)"),
                ))
            } else {
                Ok(r)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_never_shown() {
        assert_eq!(
            shown("https://h/v1/skus?key=AIzaSECRET&currencyCode=USD&pageToken=a%3D"),
            "https://h/v1/skus?key=REDACTED&currencyCode=USD&pageToken=a%3D"
        );
        assert_eq!(shown("https://h/p?$filter=x"), "https://h/p?$filter=x");
    }

    #[test]
    fn origins_compare_with_default_ports_written_out() {
        assert_eq!(
            origin("https://prices.azure.com:443/api/retail/prices?$skip=1000"),
            origin("https://prices.azure.com/api/retail/prices")
        );
        assert_ne!(
            origin("https://evil.example/api"),
            origin("https://prices.azure.com/api")
        );
        assert_eq!(origin("ftp://x/y"), None);
        assert_eq!(
            origin("http://127.0.0.1:9000/p"),
            Some(("http".into(), "127.0.0.1".into(), 9000))
        );
    }
}
