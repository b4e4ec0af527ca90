-- The catalogue: product pages are rendered from these rows.
CREATE TABLE products (
    id          bigint PRIMARY KEY,
    name        text   NOT NULL,
    price_cents bigint NOT NULL
);
