"""Personal data by the book: how long each kind of data is kept, a person's export, erasure
by pseudonymisation that keeps the audit trail, and the notices the CNIL expects. It sits on
top of the apps whose data it governs (access, labs, bookings, campus), below `config`."""
