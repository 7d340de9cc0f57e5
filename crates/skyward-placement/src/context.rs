//! Per-plan precomputation (Kubernetes' PreFilter): indexes and caches that
//! every workload's filtering reads many times. Built once per plan, from
//! the catalog and the fleet; read-only afterwards.

use skyward_catalog::Catalog;
use skyward_model::{Fleet, RegionInfo, RegionKey};
use std::collections::BTreeMap;

/// A coupling row: a quota (accelerators) or a reserved pool (nodes).
#[derive(Debug, Clone)]
pub struct RowDef {
    pub name: String,
    pub limit: u64,
    pub kind: RowKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Quota(usize),
    Pool(usize),
}

pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub fleet: &'a Fleet,
    pub regions: Vec<RegionKey>,
    pub region_info: Vec<RegionInfo>,
    pub region_index: BTreeMap<RegionKey, u32>,
    pub providers: Vec<String>,
    pub provider_index: BTreeMap<String, u32>,
    /// Region of each catalog offering.
    pub offering_region: Vec<u32>,
    /// Provider of each region.
    region_provider: Vec<u32>,
    /// Quota rows each catalog offering counts against (on-demand/spot).
    offering_quota_rows: Vec<Vec<usize>>,
    /// Offerings by (lower-case accelerator, count per node).
    pub by_accelerator: BTreeMap<(String, u32), Vec<usize>>,
    pub rows: Vec<RowDef>,
    /// RTT in ms from a user origin to each region.
    rtt_from: BTreeMap<RegionKey, Vec<f64>>,
    /// Egress $/GB from a data region to each region.
    egress_from: BTreeMap<RegionKey, Vec<f64>>,
}

impl<'a> Context<'a> {
    pub fn new(catalog: &'a Catalog, fleet: &'a Fleet) -> Context<'a> {
        let mut keys: Vec<RegionKey> = catalog.offerings.iter().map(|o| o.region.clone()).collect();
        keys.extend(fleet.capacity.iter().map(|c| c.region.clone()));
        keys.sort();
        keys.dedup();
        let region_index: BTreeMap<RegionKey, u32> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        let region_info = keys.iter().map(|k| catalog.region(k)).collect();
        let mut providers: Vec<String> = keys.iter().map(|k| k.provider.clone()).collect();
        for w in &fleet.workloads {
            if let Some(d) = &w.data {
                providers.push(d.region.provider.clone());
            }
        }
        for c in &fleet.contracts {
            providers.push(c.provider.clone());
        }
        providers.sort();
        providers.dedup();
        let provider_index: BTreeMap<String, u32> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        let offering_region = catalog
            .offerings
            .iter()
            .map(|o| region_index.get(&o.region).copied().unwrap_or(0))
            .collect();
        let mut by_accelerator: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
        for (i, o) in catalog.offerings.iter().enumerate() {
            by_accelerator
                .entry((o.accelerator.to_ascii_lowercase(), o.accelerator_count))
                .or_default()
                .push(i);
        }
        let region_provider = keys
            .iter()
            .map(|k| provider_index.get(&k.provider).copied().unwrap_or(0))
            .collect();
        let mut ctx = Context {
            catalog,
            fleet,
            region_provider,
            offering_quota_rows: Vec::new(),
            regions: keys,
            region_info,
            region_index,
            providers,
            provider_index,
            offering_region,
            by_accelerator,
            rows: Vec::new(),
            rtt_from: BTreeMap::new(),
            egress_from: BTreeMap::new(),
        };
        // Quotas by (provider, lower-case accelerator), then each offering's
        // rows from that index: a lookup per offering, not a scan of every
        // quota per option.
        type Scoped<'q> = Vec<(Option<&'q str>, usize)>;
        let mut quotas_by: BTreeMap<(u32, String), Scoped> = BTreeMap::new();
        for (i, q) in fleet.quotas.iter().enumerate() {
            let p = ctx
                .provider_index
                .get(&q.provider)
                .copied()
                .unwrap_or(u32::MAX);
            quotas_by
                .entry((p, q.accelerator.to_ascii_lowercase()))
                .or_default()
                .push((q.region.as_deref(), ctx.rows.len()));
            ctx.rows.push(RowDef {
                name: format!("quota {q}"),
                limit: u64::from(q.max),
                kind: RowKind::Quota(i),
            });
        }
        // Without quotas every offering's list is empty (quota_rows_of).
        if !quotas_by.is_empty() {
            ctx.offering_quota_rows = catalog
                .offerings
                .iter()
                .zip(&ctx.offering_region)
                .map(|(o, &region)| {
                    let provider = ctx.region_provider[region as usize];
                    let key = &ctx.regions[region as usize];
                    quotas_by
                        .get(&(provider, o.accelerator.to_ascii_lowercase()))
                        .map(|list| {
                            list.iter()
                                .filter(|(r, _)| {
                                    r.is_none_or(|rr| rr.eq_ignore_ascii_case(&key.region))
                                })
                                .map(|(_, row)| *row)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
        }
        for (i, c) in fleet.capacity.iter().enumerate() {
            ctx.rows.push(RowDef {
                name: format!("reserved {}", c.name),
                limit: u64::from(c.nodes),
                kind: RowKind::Pool(i),
            });
        }
        for w in &fleet.workloads {
            for u in &w.users {
                if !ctx.rtt_from.contains_key(u) {
                    let v = ctx
                        .regions
                        .iter()
                        .map(|r| catalog.network.rtt_ms(u, r).value)
                        .collect();
                    ctx.rtt_from.insert(u.clone(), v);
                }
            }
            if let Some(d) = &w.data {
                if !ctx.egress_from.contains_key(&d.region) {
                    let v = ctx
                        .regions
                        .iter()
                        .map(|r| catalog.network.egress_usd_per_gb(&d.region, r).value)
                        .collect();
                    ctx.egress_from.insert(d.region.clone(), v);
                }
            }
        }
        ctx
    }

    pub fn rtt_ms(&self, origin: &RegionKey, region: u32) -> f64 {
        self.rtt_from
            .get(origin)
            .and_then(|v| v.get(region as usize))
            .copied()
            .unwrap_or(f64::INFINITY)
    }

    pub fn egress_usd_per_gb(&self, src: &RegionKey, region: u32) -> f64 {
        self.egress_from
            .get(src)
            .and_then(|v| v.get(region as usize))
            .copied()
            .unwrap_or(0.0)
    }

    /// Quota rows catalog offering `offering` counts against (on-demand
    /// or spot).
    pub fn quota_rows_of(&self, offering: usize) -> &[usize] {
        self.offering_quota_rows
            .get(offering)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn pool_row(&self, pool: usize) -> usize {
        self.fleet.quotas.len() + pool
    }

    pub fn provider_of(&self, region: u32) -> u32 {
        self.region_provider
            .get(region as usize)
            .copied()
            .unwrap_or(0)
    }
}
