-- Sites' health history (issue 16): a site lost (no heartbeat within the
-- timeout, or taken out by a drill), back again, and the drills run. The
-- leading replica writes them; the newest 100,000 are kept.
CREATE TABLE site_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    site TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX site_events_site ON site_events (site, id);
