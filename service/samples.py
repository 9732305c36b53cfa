"""The sample orders an empty store can be loaded with (LOAD_SAMPLE_ORDERS=true)."""
from .store import Order

SAMPLE_ORDERS = (
    Order(id=1, username="Unjudosely", orders="Thinkpad", total_sum="8000"),
    Order(id=2, username="Wimen1979", orders="MacbookPro", total_sum="12000"),
    Order(id=3, username="Gotin1984", orders="Chormebook", total_sum="10000"),
)
