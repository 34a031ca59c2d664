"""What each bookkeeping category means, written once: a short gloss per common category name.

The category model's word knowledge (word_knowledge.WordKnowledge) compares a description never seen with these
texts. A ledger's category is looked up by its folded name (case, accents, '&'/'and', punctuation and a plural 's'
ignored) and by each alias; a category not listed (a user's own) is glossed by its readable name alone. The glosses
describe kinds of businesses and purchases in plain words, as a chart of accounts would; they name no merchant, so
nothing here is tuned to the generator's catalogue or to any test ledger. Training only: a model carries the
vectors of the texts it used, and logs the texts as evaluation/category_glosses.json.
"""

from __future__ import annotations

import re
import unicodedata

# (names and aliases, gloss). Names are matched folded; the first name is only a label.
CATEGORY_GLOSSES = (
    (("meals & entertainment", "meals entertainment", "meals", "food & dining", "dining", "eating out",
      "restaurants", "restaurant", "food"),
     "restaurant, cafe, coffee shop, bar, pub, bistro, diner, fast food, pizza, sushi, lunch, dinner, food delivery, "
     "takeaway"),
    (("coffee shops", "coffee", "cafes"), "coffee shop, cafe, espresso, tea house, bakery"),
    (("groceries", "grocery", "groceries pantry", "supermarket", "food & groceries"),
     "grocery store, supermarket, food market, bakery, butcher, farmers market"),
    (("fuel", "gas", "gas & fuel", "petrol", "auto fuel", "gasoline"),
     "gas station, petrol station, fuel, gasoline, diesel, oil company"),
    (("transport", "transportation", "local transport", "commuting", "public transport", "taxi & rideshare"),
     "taxi, ride share, bus, metro, subway, train ticket, tram, scooter, commute"),
    (("travel", "travel & lodging", "lodging", "flights", "hotels"),
     "airline, flight, hotel, lodging, car rental, travel booking, rail journey, trip, cruise, ferry, vacation "
     "rental, tour"),
    (("parking tolls", "parking", "tolls", "parking & tolls"), "parking garage, parking meter, toll road, toll"),
    (("vehicle maintenance", "auto", "car", "auto & transport", "car maintenance", "auto maintenance"),
     "car repair, auto service, oil change, tires, mechanic, garage"),
    (("office supplies", "office", "office expenses", "supplies", "stationery"),
     "office supplies, stationery, paper, printer ink, toner, pens"),
    (("software", "software subscriptions", "saas", "apps"),
     "software license, app subscription, cloud software, developer tools, productivity software"),
    (("hosting", "cloud hosting", "web hosting", "cloud services", "servers"),
     "cloud hosting, web hosting, servers, cloud computing, domain, data center"),
    (("subscriptions", "subscriptions media", "media", "streaming", "memberships", "dues & subscriptions"),
     "subscription, streaming video, music streaming, newspaper, magazine, membership"),
    (("phone & internet", "telephone", "phone", "mobile", "internet", "telecom", "phone bill", "cell phone"),
     "mobile phone, telephone, wireless carrier, internet provider, broadband, cable"),
    (("utilities", "utility", "energy", "electricity", "water"),
     "electricity, gas and power utility, water, energy bill, waste collection"),
    (("rent", "housing", "rent & lease", "lease", "office rent", "mortgage"),
     "rent, lease, landlord, property management, office space"),
    (("insurance", "insurances"), "insurance premium, insurer, liability insurance, health insurance, car insurance"),
    (("bank fees", "bank charges", "fees", "bank fees & charges", "service charges"),
     "bank fee, account fee, service charge, wire fee, overdraft fee"),
    (("advertising", "marketing", "advertising & marketing", "ads"),
     "advertising, online ads, marketing campaign, promotion"),
    (("professional services", "professional fees", "accounting", "consulting", "legal & professional"),
     "accountant, bookkeeping, consultant, lawyer, professional advisor"),
    (("legal", "legal fees"), "lawyer, attorney, notary, legal fees, court"),
    (("education", "training education", "training", "courses", "learning"),
     "online course, training, education, tuition, books, workshop"),
    (("gifts", "gifts & donations", "gift"), "gift, present, flowers"),
    (("charity", "charitable donations", "donations", "donation"), "charity, donation, nonprofit, foundation"),
    (("taxes", "taxes licenses", "tax", "taxes & licenses", "licenses"),
     "tax payment, tax authority, VAT, income tax, license fee, permit"),
    (("equipment", "computer equipment", "hardware", "electronics"),
     "computer, laptop, monitor, electronics, hardware, camera, equipment"),
    (("repairs maintenance", "repairs", "maintenance", "home improvement", "home repairs", "home"),
     "hardware store, home improvement, repair, plumber, handyman, maintenance"),
    (("health", "healthcare", "medical", "pharmacy", "health & fitness", "fitness", "gym"),
     "pharmacy, doctor, dentist, medicine, clinic, health, gym, fitness"),
    (("shipping postage", "shipping", "postage", "postage & delivery"),
     "shipping, postage, courier, parcel delivery, post office, mail"),
    (("payroll", "salaries", "wages", "salary"), "payroll, salary, wages, payroll taxes, employees"),
    (("shopping", "general merchandise", "retail"),
     "shopping, department store, online marketplace, retail store, general merchandise"),
    (("clothes", "clothing", "apparel"), "clothing, apparel, shoes, fashion store"),
    (("household", "home goods", "household goods"), "household goods, home supplies, cleaning products"),
    (("books",), "bookshop, bookstore, books"),
    (("pet care", "pets", "pet"), "pet store, veterinarian, pet food, animal hospital"),
    (("transfers", "transfer", "payments to people"), "money transfer, payment to a person, peer to peer payment"),
    (("cash & atm", "cash", "atm", "cash withdrawal"), "ATM cash withdrawal, cash"),
    (("entertainment", "leisure", "recreation"), "cinema, concert, sports, games, leisure, entertainment"),
)


def fold_name(name: str) -> str:
    """'Meals & Entertainment' -> 'meals and entertainment' -> key 'meal entertainment' (case, accents, '&'/'and',
    punctuation and a plural 's' ignored)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z]+", " ", text.replace("&", " "))
    words = [w for w in text.split() if w != "and"]
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


_BY_NAME = {fold_name(alias): gloss for names, gloss in CATEGORY_GLOSSES for alias in names}


def readable_name(category: str) -> str:
    """The category as words: 'meals_entertainment' -> 'meals entertainment'."""
    return " ".join(re.sub(r"[_\-/]+", " ", str(category)).split())


def gloss_for(category: str) -> tuple[str, bool]:
    """(text describing the category, whether a written gloss was found). The text always starts with the name."""
    name = readable_name(category)
    gloss = _BY_NAME.get(fold_name(category))
    return (f"{name}: {gloss}" if gloss else name), gloss is not None
