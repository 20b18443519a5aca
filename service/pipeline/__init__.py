"""The request pipeline: routing, planning, attempts, answers and streams, shadow traffic."""
