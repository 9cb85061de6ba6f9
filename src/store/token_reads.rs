//! Reads of `gmail_token` rows by user id, batched while the database is
//! busy: the token API's misses (users not in the in-process cache) that
//! arrive while earlier reads are running are answered by one
//! `SELECT … WHERE user_id = ANY($1)` instead of one statement each.
//!
//! One task takes the asks from a queue: it waits for one of
//! [`ReadBatching::concurrent`] batch slots, then takes the first ask and every
//! ask already queued (up to [`ReadBatching::max_rows`]) and runs them as one
//! statement on a task of its own, which answers each waiter with its own
//! user's row. A lone ask goes out at once (no timer); batches grow only while
//! every slot is taken. A waiter that goes away (its client disconnected) only
//! drops its answer: the statement runs for the others.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::gmail_token::{ConnectionStatus, TokenRow};

/// How the batched reads are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBatching {
    /// Batches running at once (each holds one pool connection).
    pub concurrent: usize,
    /// Most rows one statement asks for.
    pub max_rows: usize,
    /// Longest a waiter waits for its answer (the pool's acquire timeout
    /// plus the statement timeout: what one read of its own could take).
    pub wait: Duration,
}

type Answer = Result<Option<TokenRow>, sqlx::Error>;

struct Ask {
    user: Uuid,
    reply: oneshot::Sender<Answer>,
}

/// The queue of reads; the task that batches them starts on the first read.
pub struct BatchedReads {
    pool: PgPool,
    bounds: ReadBatching,
    queue: OnceLock<mpsc::Sender<Ask>>,
}

impl BatchedReads {
    pub fn new(pool: PgPool, bounds: ReadBatching) -> Self {
        Self {
            pool,
            bounds,
            queue: OnceLock::new(),
        }
    }

    /// The row of `user`, read by a statement that starts after this call
    /// (a generation taken before it still guards what is cached from it).
    pub async fn find(&self, user: Uuid) -> Answer {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(self.bounds.wait, async {
            self.queue()
                .send(Ask { user, reply })
                .await
                .map_err(|_| sqlx::Error::PoolClosed)?;
            // The task never drops an ask unanswered while it runs.
            answer.await.map_err(|_| sqlx::Error::PoolClosed)?
        });
        waited.await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    fn queue(&self) -> &mpsc::Sender<Ask> {
        self.queue.get_or_init(|| {
            let (queue, asks) = mpsc::channel(self.bounds.max_rows * self.bounds.concurrent);
            tokio::spawn(dispatch(self.pool.clone(), asks, self.bounds));
            queue
        })
    }
}

/// Take asks while a batch slot is free; ends when the queue's sender is
/// dropped (the service shuts down).
async fn dispatch(pool: PgPool, mut asks: mpsc::Receiver<Ask>, bounds: ReadBatching) {
    let slots = Arc::new(Semaphore::new(bounds.concurrent));
    let mut batch = Vec::with_capacity(bounds.max_rows);
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if asks.recv_many(&mut batch, bounds.max_rows).await == 0 {
            return;
        }
        // Waiters that went away need no read.
        batch.retain(|a| !a.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let asked = std::mem::replace(&mut batch, Vec::with_capacity(bounds.max_rows));
        tokio::spawn(answer(pool.clone(), asked, slot));
    }
}

/// Run one batch and answer each waiter with its own user's row.
async fn answer(pool: PgPool, mut asked: Vec<Ask>, _slot: OwnedSemaphorePermit) {
    let mut users: Vec<Uuid> = asked.iter().map(|a| a.user).collect();
    users.sort_unstable();
    users.dedup();
    let mut rows = match find_many(&pool, &users).await {
        Ok(rows) => rows,
        Err(e) => {
            for ask in asked {
                let _ = ask.reply.send(Err(copy_of(&e)));
            }
            return;
        }
    };
    // Sorted by user: the last ask for a user takes the row, earlier ones a copy.
    asked.sort_unstable_by_key(|a| a.user);
    let mut asked = asked.into_iter().peekable();
    while let Some(ask) = asked.next() {
        let again = asked.peek().is_some_and(|next| next.user == ask.user);
        let row = match again {
            true => rows.get(&ask.user).cloned(),
            false => rows.remove(&ask.user),
        };
        let _ = ask.reply.send(Ok(row));
    }
}

/// The rows of `users` (distinct), by user id.
async fn find_many(pool: &PgPool, users: &[Uuid]) -> Result<HashMap<Uuid, TokenRow>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, scopes_mac, status AS "status: ConnectionStatus", last_error,
                  last_refreshed_at, consented_at,
                  created_at, updated_at
           FROM gmail_token WHERE user_id = ANY($1)"#,
        users
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r)).collect())
}

/// A batch's error for one of its waiters (`sqlx::Error` is not `Clone`):
/// the same when it carries nothing, else its message under the same
/// verdict of [`super::is_unavailable`] (a database that cannot work now
/// answers 503 as before; anything else stays an internal error).
fn copy_of(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        e if super::is_unavailable(e) => sqlx::Error::Io(std::io::Error::other(e.to_string())),
        e => sqlx::Error::Protocol(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_the_verdict() {
        let io = sqlx::Error::Io(std::io::Error::other("reset"));
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, io] {
            assert!(super::super::is_unavailable(&copy_of(&e)), "{e}");
        }
        let other = sqlx::Error::RowNotFound;
        assert!(!super::super::is_unavailable(&copy_of(&other)));
    }
}
