"""The appointment core that the booking AND the webhooks service write through.

One implementation each, imported by both services (which never import each other):

- `fence`: the overlap fence (staff lock, conflict query, blocked ranges; ADR 0002);
- `writes`: compare-and-set on the appointment's version;
- `customers`: the customer upsert by phone;
- `events`: what an appointment change stages (snapshot, notices, `sync_appointment`);
- `callbacks`: creating a callback request (the REST transitions stay in booking).

It imports only `shared` (models, db, outbox), never a service.
"""
