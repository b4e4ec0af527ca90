-- Wallets hold a balance in cents; every replica of the service credits them.
CREATE TABLE wallets (
    id            bigint PRIMARY KEY,
    owner         text   NOT NULL,
    balance_cents bigint NOT NULL DEFAULT 0,
    tips_received bigint NOT NULL DEFAULT 0
);

INSERT INTO wallets (id, owner) VALUES (1, 'the creator of post 1');
