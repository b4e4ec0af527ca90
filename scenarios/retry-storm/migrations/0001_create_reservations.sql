-- Every order's outcome at the warehouse, as the order service recorded it:
-- `reserved` with the warehouse's ticket, or `failed`. An append-only log
-- (no unique key), so that an outcome recorded twice shows as two rows.
CREATE TABLE reservations (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    item_id     bigint NOT NULL,
    quantity    integer NOT NULL,
    status      text NOT NULL CHECK (status IN ('reserved', 'failed')),
    ticket      text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reservations_order_id ON reservations (order_id);
