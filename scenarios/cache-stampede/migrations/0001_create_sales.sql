-- The shop's catalogue and every line of every order: the best-sellers
-- report adds them all up.
CREATE TABLE products (
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);

CREATE TABLE order_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint  NOT NULL,
    product_id  bigint  NOT NULL,
    quantity    integer NOT NULL,
    price_cents bigint  NOT NULL
);
