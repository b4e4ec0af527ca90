-- The shop's products and the packs each is sold in: a screw comes loose,
-- in sixes, dozens and boxes of 24, each pack at its own price.
CREATE TABLE products (
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);

CREATE TABLE packs (
    product_id  bigint NOT NULL REFERENCES products (id),
    size        bigint NOT NULL CHECK (size > 0),
    price_cents bigint NOT NULL CHECK (price_cents > 0),
    PRIMARY KEY (product_id, size)
);
