//! Ejection chains that restore a plan's count.
//!
//! A workload left out may fit if room is made in the one row that blocks
//! it: move a placed workload out of that row to another of its options;
//! if that option's row is full too, move one out of it, and so on. The
//! rows form a path `r0 → r1 → … → rk`, the last move landing where there
//! is room. Single ejections (`lagrange::eject`) find only paths of one
//! step. When no single move frees enough, several paths free the row in
//! pieces; when no path exists at all, a smaller left-out workload is
//! swapped in for a larger placed one (the count is unchanged, the row
//! gains room), and the search starts again. Swaps are kept only if the
//! count then rises.
//!
//! Found on tight fleets: at 5,000 workloads (seed 1) and 10,000 (seed 2)
//! the LP's rounded plan stayed one short of the proven maximum, every
//! row full but one with 16 accelerators free; the only plans that placed
//! the last workload were count-first repairs 39.6 % and 43.1 % above the
//! bound. With these moves: 0.37 % and 0.39 %.
//!
//! The search is breadth-first over (row, amount to free), so the first
//! path found is a shortest one, on a table of the cheapest move of each
//! kind out of each row: (amount freed, row it lands in, amount it needs
//! there). Rows on a path are distinct. Every path is applied move by
//! move with the rows checked, and undone if any move no longer fits, so
//! a stale table can cost a try, never a broken row.
//!
//! Bounded: at most `NODES_MAX` search nodes per path, `DEPTH_MAX` moves
//! per path, `PIECES_MAX` paths per row, `TRIES_MAX` tries (left-out
//! workloads of distinct row use) and `DOWNSIZE_MAX` swaps in a row
//! without the count rising, per call.

use crate::lagrange::{blocked_row, State, SCAN_MAX};
use crate::problem::Problem;
use std::collections::{HashMap, HashSet, VecDeque};

/// Search nodes per try.
pub const NODES_MAX: usize = 4_096;
/// Moves per path.
pub const DEPTH_MAX: usize = 6;
/// Tries per call (a try: one left-out workload, all its options).
pub const TRIES_MAX: usize = 256;
/// Paths that free one row together.
pub const PIECES_MAX: usize = 4;
/// Count-neutral swaps made in a row without the count rising.
pub const DOWNSIZE_MAX: usize = 8;
/// Left-out workloads (of distinct row use, smallest first) a swap
/// considers: with most of a large fleet left out, every one of them
/// against SCAN_MAX placed ones per option would be billions of checks.
pub const DOWNSIZE_CANDIDATES_MAX: usize = 64;

/// "Lands where there is room": the end of a path.
const ROOM: usize = usize::MAX;
const EPS: f64 = 1e-9;

#[derive(Clone, Copy)]
struct Move {
    /// Amount freed in the row the move leaves.
    freed: f64,
    /// Row the workload lands in that lacks room, or ROOM.
    to_row: usize,
    /// Amount it takes in `to_row`.
    needs: f64,
    w: usize,
    from: usize,
    to: usize,
    delta: f64,
}

/// Per row, the cheapest move of each kind out of it, cheapest first.
fn moves_by_row(pr: &Problem, st: &mut State) -> Vec<Vec<Move>> {
    let rows = pr.row_limit.len();
    let mut best: Vec<HashMap<(u64, usize, u64), Move>> = vec![HashMap::new(); rows];
    for w in 0..pr.options.len() {
        let Some(cur) = st.choice[w] else { continue };
        if pr.options[w][cur].uses.is_empty() || pr.options[w].len() < 2 {
            continue;
        }
        st.take(pr, w);
        let removed = st.added_cost(pr, w, cur);
        for o in 0..pr.options[w].len() {
            if o == cur {
                continue;
            }
            let mut blocked = None;
            let mut many = false;
            for &(r, a) in &pr.options[w][o].uses {
                if st.used[r] + a > pr.row_limit[r] + EPS {
                    many |= blocked.is_some();
                    blocked = Some((r, a));
                }
            }
            let (to_row, needs) = blocked.unwrap_or((ROOM, 0.0));
            if many || pr.options[w][cur].uses.iter().any(|u| u.0 == to_row) {
                continue;
            }
            let delta = st.added_cost(pr, w, o) - removed;
            for &(r, freed) in &pr.options[w][cur].uses {
                let m = Move {
                    freed,
                    to_row,
                    needs,
                    w,
                    from: cur,
                    to: o,
                    delta,
                };
                best[r]
                    .entry((freed.to_bits(), to_row, needs.to_bits()))
                    .and_modify(|b| {
                        if delta < b.delta {
                            *b = m;
                        }
                    })
                    .or_insert(m);
            }
        }
        st.put(pr, w, cur);
    }
    best.into_iter()
        .map(|m| {
            let mut v: Vec<Move> = m.into_values().collect();
            v.sort_by(|a, b| {
                a.delta
                    .total_cmp(&b.delta)
                    .then(a.w.cmp(&b.w))
                    .then(a.to.cmp(&b.to))
            });
            v
        })
        .collect()
}

struct Node {
    row: usize,
    need: f64,
    /// Index of the parent node and the move out of its row that led
    /// here (None at the root).
    via: Option<(usize, Move)>,
    depth: usize,
}

/// The moves (first out of `row`) that free `need` in `row`, or None.
fn find_path(
    pr: &Problem,
    st: &State,
    table: &[Vec<Move>],
    w: usize,
    row: usize,
    need: f64,
) -> Option<Vec<Move>> {
    let mut nodes = vec![Node {
        row,
        need,
        via: None,
        depth: 0,
    }];
    let mut seen: HashSet<(usize, u64)> = HashSet::new();
    seen.insert((row, need.to_bits()));
    let mut queue = VecDeque::from([0usize]);
    // The path's moves, root first, ending with `last`.
    let path = |nodes: &[Node], at: usize, last: Move| {
        let mut out = vec![last];
        let mut i = at;
        while let Some((parent, m)) = nodes[i].via {
            out.push(m);
            i = parent;
        }
        out.reverse();
        out
    };
    // Rows and workloads already on the path to node `at`.
    let on_path = |nodes: &[Node], at: usize, row: usize, v: usize| {
        let mut i = at;
        loop {
            if nodes[i].row == row {
                return true;
            }
            match nodes[i].via {
                Some((parent, m)) => {
                    if m.w == v {
                        return true;
                    }
                    i = parent;
                }
                None => return false,
            }
        }
    };
    while let Some(at) = queue.pop_front() {
        let (r, d, depth) = (nodes[at].row, nodes[at].need, nodes[at].depth);
        for m in &table[r] {
            if m.freed + EPS < d || m.w == w || on_path(&nodes, at, ROOM, m.w) {
                continue;
            }
            if m.to_row == ROOM {
                return Some(path(&nodes, at, *m));
            }
            if on_path(&nodes, at, m.to_row, m.w) {
                continue;
            }
            let need = st.used[m.to_row] + m.needs - pr.row_limit[m.to_row];
            if need <= EPS {
                return Some(path(&nodes, at, *m));
            }
            if depth + 1 >= DEPTH_MAX
                || nodes.len() >= NODES_MAX
                || !seen.insert((m.to_row, need.to_bits()))
            {
                continue;
            }
            nodes.push(Node {
                row: m.to_row,
                need,
                via: Some((at, *m)),
                depth: depth + 1,
            });
            queue.push_back(nodes.len() - 1);
        }
    }
    None
}

/// Applies the path's moves from its end; on a move that no longer fits,
/// undoes those applied and returns None.
fn apply_moves(pr: &Problem, st: &mut State, path: &[Move]) -> Option<Vec<Move>> {
    let mut done: Vec<Move> = Vec::with_capacity(path.len());
    for m in path.iter().rev() {
        let fits = st.choice[m.w] == Some(m.from) && {
            st.take(pr, m.w);
            let f = st.fits(pr, m.w, m.to);
            st.put(pr, m.w, if f { m.to } else { m.from });
            f
        };
        if !fits {
            undo(pr, st, &done);
            return None;
        }
        done.push(*m);
    }
    Some(done)
}

fn undo(pr: &Problem, st: &mut State, done: &[Move]) {
    for m in done.iter().rev() {
        st.take(pr, m.w);
        st.put(pr, m.w, m.from);
    }
}

/// Applies the path, then places w on o; undoes it all and returns false
/// if any step does not fit.
fn apply(pr: &Problem, st: &mut State, path: &[Move], w: usize, o: usize) -> bool {
    let Some(done) = apply_moves(pr, st, path) else {
        return false;
    };
    if st.choice[w].is_none() && st.fits(pr, w, o) {
        st.put(pr, w, o);
        return true;
    }
    undo(pr, st, &done);
    false
}

/// Frees `need` in `row` by paths each freeing less, largest first
/// (`PIECES_MAX` at most), then places w on o; false (and nothing
/// changed) if that does not make room.
fn apply_in_pieces(
    pr: &Problem,
    st: &mut State,
    table: &[Vec<Move>],
    (w, o): (usize, usize),
    row: usize,
) -> bool {
    let mut done: Vec<Move> = Vec::new();
    for _ in 0..PIECES_MAX {
        let need = st.used[row] + use_of(pr, w, o, row) - pr.row_limit[row];
        if need <= EPS {
            break;
        }
        let mut amounts: Vec<f64> = table[row]
            .iter()
            .map(|m| m.freed)
            .filter(|a| *a + EPS < need)
            .collect();
        amounts.sort_by(|a, b| b.total_cmp(a));
        amounts.dedup();
        let piece = amounts.iter().find_map(|&a| {
            let path = find_path(pr, st, table, w, row, a)?;
            // A move already made (or its workload) is not made twice.
            let clash = path.iter().any(|m| done.iter().any(|d| d.w == m.w));
            if clash {
                return None;
            }
            apply_moves(pr, st, &path)
        });
        match piece {
            Some(moves) => done.extend(moves),
            None => break,
        }
    }
    if st.choice[w].is_none() && st.fits(pr, w, o) {
        st.put(pr, w, o);
        return true;
    }
    undo(pr, st, &done);
    false
}

/// A workload's options' row use, as a key: workloads with equal keys
/// are the same to the searches here.
fn row_use(pr: &Problem, w: usize) -> Vec<(usize, u64)> {
    pr.options[w]
        .iter()
        .flat_map(|o| o.uses.iter().map(|&(r, a)| (r, a.to_bits())))
        .collect()
}

fn use_of(pr: &Problem, w: usize, o: usize, row: usize) -> f64 {
    pr.options[w][o].use_of(row).unwrap_or(0.0)
}

/// The one row that blocks option o of w, with the amount it lacks.
fn blocked(pr: &Problem, st: &State, w: usize, o: usize) -> Option<(usize, f64)> {
    let r = blocked_row(pr, st, w, o)?;
    Some((r, st.used[r] + use_of(pr, w, o, r) - pr.row_limit[r]))
}

/// Places w (one of its options, cheapest first) by a chain, or by
/// chains freeing its row in pieces.
fn place(pr: &Problem, st: &mut State, table: &[Vec<Move>], w: usize) -> bool {
    let mut order: Vec<(f64, usize)> = (0..pr.options[w].len())
        .map(|o| (st.added_cost(pr, w, o), o))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for &(_, o) in &order {
        if st.fits(pr, w, o) {
            st.put(pr, w, o);
            return true;
        }
        let Some((r, need)) = blocked(pr, st, w, o) else {
            continue;
        };
        if let Some(path) = find_path(pr, st, table, w, r, need) {
            if apply(pr, st, &path, w, o) {
                return true;
            }
        }
    }
    order.iter().any(|&(_, o)| {
        blocked(pr, st, w, o).is_some_and(|(r, _)| apply_in_pieces(pr, st, table, (w, o), r))
    })
}

/// A swap that keeps the count and frees room: a left-out workload in,
/// one that takes more of the row it needs out. The one freeing the most
/// (then the cheapest). Returns the workload taken out.
fn downsize(
    pr: &Problem,
    st: &mut State,
    by_row: &[Vec<usize>],
    unplaced: &[usize],
) -> Option<usize> {
    let mut best: Option<(f64, f64, usize, usize, usize)> = None;
    let mut seen: HashSet<Vec<(usize, u64)>> = HashSet::new();
    for &y in unplaced {
        if st.choice[y].is_some() || !seen.insert(row_use(pr, y)) {
            continue;
        }
        if seen.len() > DOWNSIZE_CANDIDATES_MAX {
            break;
        }
        for o in 0..pr.options[y].len() {
            let Some((r, need)) = blocked(pr, st, y, o) else {
                continue;
            };
            let a_y = use_of(pr, y, o, r);
            for &x in by_row[r].iter().take(SCAN_MAX) {
                let Some(cur) = st.choice[x] else { continue };
                let a_x = use_of(pr, x, cur, r);
                if !pr.can_skip[x] || a_x + EPS < need || a_x <= a_y + EPS {
                    continue;
                }
                st.take(pr, x);
                let fits = st.fits(pr, y, o);
                let delta = st.added_cost(pr, y, o) - st.added_cost(pr, x, cur);
                st.put(pr, x, cur);
                let gain = a_x - a_y;
                let better =
                    best.is_none_or(|b| gain > b.0 + EPS || (gain > b.0 - EPS && delta < b.1));
                if fits && better {
                    best = Some((gain, delta, y, o, x));
                }
            }
        }
    }
    let (_, _, y, o, x) = best?;
    st.take(pr, x);
    st.put(pr, y, o);
    Some(x)
}

/// Places left-out workloads (smallest first) through ejection chains
/// until `target` are placed; when none can be, swaps in smaller
/// left-out workloads for larger ones (`DOWNSIZE_MAX` at most) and tries
/// again, keeping those swaps only if the count rose. True if it rose.
pub(crate) fn restore_count(pr: &Problem, st: &mut State, size: &[f64], target: usize) -> bool {
    let start = Problem::placed(&st.choice);
    if start >= target {
        return false;
    }
    let mut placed = start;
    let mut kept = st.choice.clone();
    let mut downsized = 0;
    let mut tries = 0;
    loop {
        let mut unplaced: Vec<usize> = (0..pr.options.len())
            .filter(|&w| st.choice[w].is_none())
            .collect();
        unplaced.sort_by(|a, b| size[*a].total_cmp(&size[*b]).then(a.cmp(b)));
        let table = moves_by_row(pr, st);
        // Row use of the workloads tried in vain on this table.
        let mut failed: HashSet<Vec<(usize, u64)>> = HashSet::new();
        let mut rose = false;
        for &w in &unplaced {
            if placed >= target || tries >= TRIES_MAX {
                break;
            }
            let key = row_use(pr, w);
            if st.choice[w].is_some() || failed.contains(&key) {
                continue;
            }
            tries += 1;
            if place(pr, st, &table, w) {
                placed += 1;
                rose = true;
                kept = st.choice.clone();
                downsized = 0;
                // The table is stale: start over with a new one.
                break;
            }
            failed.insert(key);
        }
        if placed >= target || tries >= TRIES_MAX {
            break;
        }
        if rose {
            continue;
        }
        if downsized >= DOWNSIZE_MAX {
            break;
        }
        let by_row = st.by_row(pr);
        if downsize(pr, st, &by_row, &unplaced).is_none() {
            break;
        }
        downsized += 1;
    }
    if st.choice != kept {
        *st = State::new(pr, kept);
    }
    placed > start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Choice, Opt};

    fn opt(cost: f64, uses: &[(usize, f64)]) -> Opt {
        Opt {
            spend: vec![(0, cost)],
            uses: uses.to_vec(),
        }
    }

    /// Three rows of 8. w fits only in row 0, held by v1 (rows 0 or 1);
    /// row 1 is held by v2 (rows 1 or 2); row 2 is empty. Placing w takes
    /// two moves (v2 to row 2, then v1 to row 1): by hand, 3 placed.
    fn two_step() -> (Problem, Choice) {
        let pr = Problem {
            options: vec![
                vec![opt(1.0, &[(0, 8.0)])],
                vec![opt(1.0, &[(0, 8.0)]), opt(2.0, &[(1, 8.0)])],
                vec![opt(1.0, &[(1, 8.0)]), opt(2.0, &[(2, 8.0)])],
            ],
            can_skip: vec![true; 3],
            skip_penalty: 1e6,
            row_limit: vec![8.0; 3],
            commit: vec![0.0],
            factor: vec![1.0],
        };
        (pr, vec![None, Some(0), Some(0)])
    }

    #[test]
    fn a_two_step_chain_places_what_one_ejection_cannot() {
        let (pr, choice) = two_step();
        let size = vec![8.0; 3];
        // One ejection, however wide, cannot: v1 has nowhere to go.
        let mut st = State::new(&pr, choice.clone());
        assert!(!crate::lagrange::augment(&pr, &mut st, &size, 64, 3));
        let mut st = State::new(&pr, choice);
        assert!(restore_count(&pr, &mut st, &size, 3));
        assert_eq!(st.choice, vec![Some(0), Some(1), Some(1)]);
        assert!(pr.is_feasible(&st.choice));
        assert_eq!(pr.cost(&st.choice), 5.0);
    }

    #[test]
    fn a_chain_longer_than_the_depth_limit_is_not_followed_and_nothing_breaks() {
        // Row i held by a workload that may also use row i + 1; the last
        // row is empty. w needs DEPTH_MAX + 1 moves.
        let rows = DEPTH_MAX + 2;
        let mut options = vec![vec![opt(1.0, &[(0, 1.0)])]];
        let mut choice = vec![None];
        for r in 0..rows - 1 {
            options.push(vec![opt(1.0, &[(r, 1.0)]), opt(1.0, &[(r + 1, 1.0)])]);
            choice.push(Some(0));
        }
        let n = options.len();
        let pr = Problem {
            options,
            can_skip: vec![true; n],
            skip_penalty: 1e6,
            row_limit: vec![1.0; rows],
            commit: vec![0.0],
            factor: vec![1.0],
        };
        let mut st = State::new(&pr, choice.clone());
        assert!(!restore_count(&pr, &mut st, &vec![1.0; n], n));
        assert_eq!(st.choice, choice);
        assert!(pr.is_feasible(&st.choice));
    }

    #[test]
    fn a_path_that_went_stale_is_undone() {
        let (pr, choice) = two_step();
        let mut st = State::new(&pr, choice);
        let table = moves_by_row(&pr, &mut st);
        let path = find_path(&pr, &st, &table, 0, 0, 8.0).expect("a path");
        assert_eq!(path.len(), 2);
        // Row 2 fills up before the path is applied.
        st.used[2] = 8.0;
        let before = st.choice.clone();
        assert!(!apply(&pr, &mut st, &path, 0, 0));
        assert_eq!(st.choice, before);
        assert_eq!(st.used, vec![8.0, 8.0, 8.0]);
    }
}
