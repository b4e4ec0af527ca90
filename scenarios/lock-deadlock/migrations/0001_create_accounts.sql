-- The bank's accounts and its ledger of transfers. Every variant starts from
-- this schema; the accounts' rows are opened by the run.
CREATE TABLE accounts (
    id      bigint PRIMARY KEY,
    owner   text   NOT NULL,
    -- An account never goes below zero: a debit over the balance fails.
    balance bigint NOT NULL CHECK (balance >= 0)
);

-- One row per transfer applied, keyed by the client's transfer id.
CREATE TABLE transfers (
    id           bigint      PRIMARY KEY,
    from_account bigint      NOT NULL,
    to_account   bigint      NOT NULL,
    amount_cents bigint      NOT NULL CHECK (amount_cents > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
