"""From an approved alert to final states: the audience, planning, the outbox, sending,
the delivery state machine, receipts, the sweeper, progress and the auditors' log."""
