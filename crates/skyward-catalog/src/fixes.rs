//! Corrections for source rows known to be wrong. Each one says why; the
//! catalog build records every use in `data/notes.csv`.

use crate::skypilot::{NoteAction, RowNote, ZoneRow};
use skyward_model::Usd;

fn note(notes: &mut Vec<RowNote>, provider: &str, row: &ZoneRow, action: NoteAction, reason: &str) {
    notes.push(RowNote {
        provider: provider.to_string(),
        sku: if row.sku.is_empty() {
            row.accelerator.clone()
        } else {
            row.sku.clone()
        },
        region: row.region.clone(),
        action,
        reason: reason.to_string(),
    });
}

/// The fixes Skyward applies to SkyPilot catalogs (built-in and imported).
pub fn known_fixes(provider: &str, mut row: ZoneRow, notes: &mut Vec<RowNote>) -> Option<ZoneRow> {
    if provider == "azure" && row.sku == "Standard_ND96isr_H100_v5" && row.accelerator_count != 8.0
    {
        note(notes, provider, &row, NoteAction::Fixed, "AcceleratorCount 12 -> 8: the ND96isr H100 v5 VM has 8 H100 GPUs (Microsoft Learn, ND H100 v5 sizes)");
        row.accelerator_count = 8.0;
    }
    if provider == "azure" && row.spot.is_some() && row.spot == row.on_demand {
        note(
            notes,
            provider,
            &row,
            NoteAction::Fixed,
            "spot price equal to on-demand is not a spot price; spot dropped",
        );
        row.spot = None;
    }
    if provider == "gcp"
        && row.accelerator.starts_with("tpu-v6e")
        && row.on_demand == Some(Usd::from_dollars(700))
    {
        note(
            notes,
            provider,
            &row,
            NoteAction::Fixed,
            "on-demand 700.0 is a placeholder in the source; on-demand dropped",
        );
        row.on_demand = None;
    }
    if row.on_demand == Some(Usd::ZERO) {
        note(
            notes,
            provider,
            &row,
            NoteAction::Fixed,
            "on-demand price 0 is not a price; dropped",
        );
        row.on_demand = None;
    }
    if row.spot == Some(Usd::ZERO) {
        row.spot = None;
    }
    Some(row)
}
