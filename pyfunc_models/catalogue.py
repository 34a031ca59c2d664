"""The sample business the generator invents: its categories, merchants and rhythms.

Only the generator reads this. Models learn from whatever ledger they are given,
so nothing here may be imported by a model, a feature or a threshold.
"""

# category: (share of card-style expenses, median amount, spread (log sd), payment methods, style, merchants)
# style: "store" = card purchase at a physical shop, "online" = NAME*ORDER web merchant, "ach" = bank debit.
EXPENSE_CATEGORIES = {
    "meals_entertainment": (0.14, 38.0, 0.6, ("credit_card", "debit_card", "cash"), "store", (
        "STARBUCKS", "CHIPOTLE MEXICAN GRILL", "OLIVE GARDEN", "PANERA BREAD", "THE CHEESECAKE FACTORY",
        "BLUE BOTTLE COFFEE", "SWEETGREEN", "IN-N-OUT BURGER", "PF CHANGS", "DOORDASH", "UBER EATS",
        "SUSHI ZONE RESTAURANT", "JOES PIZZA", "TAQUERIA EL FAROLITO")),
    "fuel": (0.09, 55.0, 0.35, ("credit_card", "debit_card"), "store", (
        "SHELL OIL", "CHEVRON", "EXXONMOBIL", "ARCO", "VALERO", "76 GAS STATION", "BP PRODUCTS",
        "COSTCO GAS", "SPEEDWAY", "CIRCLE K FUEL")),
    "office_supplies": (0.08, 45.0, 0.7, ("credit_card", "debit_card"), "store", (
        "STAPLES", "OFFICE DEPOT", "OFFICEMAX", "AMAZON MKTP OFFICE", "UPRINT SUPPLY", "QUILL CORP",
        "W B MASON", "PAPER SOURCE")),
    "software": (0.07, 60.0, 0.8, ("credit_card",), "online", (
        "ADOBE", "MICROSOFT", "ATLASSIAN", "GITHUB", "SLACK TECHNOLOGIES", "ZOOM VIDEO", "JETBRAINS",
        "DROPBOX", "NOTION LABS", "FIGMA", "INTUIT QUICKBOOKS", "1PASSWORD")),
    "travel": (0.06, 320.0, 0.8, ("credit_card",), "online", (
        "UNITED AIRLINES", "DELTA AIR LINES", "SOUTHWEST AIRLINES", "MARRIOTT HOTELS", "HILTON HOTELS",
        "AIRBNB", "EXPEDIA", "HERTZ RENT A CAR", "AMTRAK", "HYATT HOTELS")),
    "local_transport": (0.06, 24.0, 0.5, ("credit_card", "digital_wallet"), "online", (
        "UBER TRIP", "LYFT RIDE", "YELLOW CAB", "BART CLIPPER", "CURB TAXI", "LIME SCOOTER")),
    "telephone": (0.03, 85.0, 0.25, ("credit_card", "bank_transfer"), "ach", (
        "AT&T WIRELESS", "VERIZON WIRELESS", "T-MOBILE", "RINGCENTRAL", "GOOGLE VOICE")),
    "internet": (0.02, 90.0, 0.2, ("bank_transfer", "credit_card"), "ach", (
        "COMCAST XFINITY", "SPECTRUM INTERNET", "SONIC NET", "CENTURYLINK", "FRONTIER COMM")),
    "utilities": (0.03, 140.0, 0.4, ("bank_transfer",), "ach", (
        "PG&E UTILITY", "CITY WATER DEPT", "CONED ENERGY", "RECOLOGY WASTE", "DUKE ENERGY")),
    "professional_fees": (0.03, 650.0, 0.7, ("bank_transfer", "check"), "ach", (
        "SMITH & ASSOCIATES CPA", "BAKER LEGAL LLP", "DELOITTE CONSULTING", "LEGALZOOM",
        "HR PARTNERS CONSULTING", "ACME BOOKKEEPING")),
    "advertising": (0.04, 180.0, 0.8, ("credit_card",), "online", (
        "GOOGLE ADS", "FACEBK ADS", "LINKEDIN ADS", "TWITTER ADS", "YELP ADVERTISING", "MAILCHIMP")),
    "cloud_hosting": (0.04, 210.0, 0.9, ("credit_card",), "online", (
        "AMAZON WEB SERVICES", "GOOGLE CLOUD", "DIGITALOCEAN", "HEROKU", "CLOUDFLARE", "LINODE")),
    "shipping_postage": (0.04, 28.0, 0.7, ("credit_card", "debit_card"), "store", (
        "USPS PO", "FEDEX OFFICE", "UPS STORE", "DHL EXPRESS", "STAMPS.COM", "PIRATE SHIP")),
    "equipment": (0.03, 480.0, 0.8, ("credit_card",), "store", (
        "APPLE STORE", "BEST BUY", "B&H PHOTO", "DELL TECHNOLOGIES", "NEWEGG", "MICRO CENTER")),
    "repairs_maintenance": (0.03, 160.0, 0.7, ("credit_card", "check"), "store", (
        "HOME DEPOT", "LOWES", "ACE HARDWARE", "ABC PLUMBING", "BAY AREA HVAC", "FIXIT HANDYMAN")),
    "bank_fees": (0.03, 15.0, 0.5, ("bank_transfer",), "ach", (
        "MONTHLY SERVICE FEE", "WIRE TRANSFER FEE", "OVERDRAFT FEE", "FOREIGN TRANSACTION FEE",
        "STRIPE FEES")),
    "insurance": (0.02, 310.0, 0.3, ("bank_transfer",), "ach", (
        "STATE FARM INSURANCE", "GEICO", "THE HARTFORD", "HISCOX INSURANCE", "NEXT INSURANCE")),
    "training_education": (0.02, 140.0, 0.8, ("credit_card",), "online", (
        "UDEMY", "COURSERA", "OREILLY MEDIA", "LINKEDIN LEARNING", "PLURALSIGHT", "MASTERCLASS")),
    "subscriptions_media": (0.03, 18.0, 0.5, ("credit_card",), "online", (
        "NYTIMES DIGITAL", "WSJ SUBSCRIPTION", "SPOTIFY", "THE ECONOMIST", "MEDIUM MEMBERSHIP", "AUDIBLE")),
    "parking_tolls": (0.04, 14.0, 0.6, ("credit_card", "cash"), "store", (
        "SP PLUS PARKING", "FASTRAK TOLL", "LAZ PARKING", "PARKMOBILE", "CITY PARKING METER")),
    "vehicle_maintenance": (0.02, 220.0, 0.7, ("credit_card", "debit_card"), "store", (
        "JIFFY LUBE", "FIRESTONE AUTO", "PEP BOYS", "MIDAS AUTO SERVICE", "DISCOUNT TIRE")),
    "taxes_licenses": (0.01, 420.0, 0.9, ("bank_transfer", "check"), "ach", (
        "IRS USATAXPYMT", "FRANCHISE TAX BD", "CITY BUSINESS LICENSE", "DMV RENEWAL")),
    "charitable_donations": (0.01, 100.0, 0.8, ("credit_card", "check"), "online", (
        "RED CROSS", "UNICEF USA", "LOCAL FOOD BANK", "WIKIMEDIA FOUNDATION")),
    "groceries_pantry": (0.03, 62.0, 0.5, ("debit_card", "credit_card"), "store", (
        "TRADER JOES", "WHOLE FOODS MKT", "SAFEWAY", "COSTCO WHSE", "KROGER")),
    # A tiny category: real ledgers have them, and they must not break splitting or training.
    "gifts": (0.0004, 75.0, 0.5, ("credit_card",), "store", ("1-800-FLOWERS", "EDIBLE ARRANGEMENTS")),
}

# Recurring expenses: (category, merchant, day of month, amount, amount jitter sd, payment method)
RECURRING_EXPENSES = (
    ("rent", "OAKWOOD PROPERTY MGMT RENT", 1, 4200.00, 0.0, "bank_transfer"),
    ("payroll", "GUSTO PAYROLL NET PAY", 15, 18500.00, 0.02, "bank_transfer"),
    ("payroll", "GUSTO PAYROLL NET PAY", -1, 18500.00, 0.02, "bank_transfer"),
    ("payroll", "GUSTO PAYROLL TAXES", -1, 6100.00, 0.03, "bank_transfer"),
    ("software", "ADOBE *CREATIVE CLOUD", 3, 84.99, 0.0, "credit_card"),
    ("software", "SLACK TECHNOLOGIES", 5, 96.00, 0.0, "credit_card"),
    ("software", "GITHUB", 12, 44.00, 0.0, "credit_card"),
    ("software", "MICROSOFT 365", 20, 66.00, 0.0, "credit_card"),
    ("telephone", "VERIZON WIRELESS", 8, 142.50, 0.01, "bank_transfer"),
    ("internet", "COMCAST XFINITY", 10, 109.99, 0.0, "bank_transfer"),
    ("insurance", "HISCOX INSURANCE", 2, 289.00, 0.0, "bank_transfer"),
    ("utilities", "PG&E UTILITY", 18, 210.00, 0.25, "bank_transfer"),
    ("cloud_hosting", "AMAZON WEB SERVICES", 2, 640.00, 0.15, "credit_card"),
)

# Income: recurring retainers and weekly payouts make the cash-flow rhythm; client payments are irregular.
RECURRING_INCOME = (
    ("RETAINER NORTHWIND TRADERS ACH CREDIT", 1, 21000.00, 0.0),
    ("RETAINER CONTOSO LTD ACH CREDIT", 15, 12500.00, 0.0),
)
WEEKLY_INCOME = ("STRIPE TRANSFER PAYOUT", 0, 5200.0, 0.35)  # (description, weekday, median, spread)
CLIENT_PAYERS = (
    "FABRIKAM INC", "TAILSPIN TOYS", "WINGTIP TOYS", "ADVENTURE WORKS", "LITWARE INC", "PROSEWARE LLC",
    "WIDE WORLD IMPORTERS", "BLUE YONDER AIRLINES", "COHO WINERY", "FOURTH COFFEE",
)
CLIENT_PAYMENT_MEDIAN, CLIENT_PAYMENT_SPREAD = 3800.0, 0.7
OTHER_INCOME = ("INTEREST PAYMENT", "REFUND FROM VENDOR", "MOBILE DEPOSIT CHECK")

# "Unusual merchant" anomalies: one-off merchants the business never deals with. Each gets a
# made-up name (syllables + a kind of business), so it is new to any model that sees it.
UNUSUAL_SYLLABLES = ("ZA", "NO", "VI", "KO", "RE", "TA", "LU", "MI", "QUA", "XE", "BRO", "DEL", "FI", "GOR",
                     "HA", "JIN", "PLO", "SU", "TRE", "VOX", "WEN", "YU")
UNUSUAL_KINDS = ("CASINO", "JEWELRY", "CRYPTO EXCHANGE", "PAWN SHOP", "YACHT CHARTER", "NIGHTCLUB",
                 "GIFTCARD MALL", "OFFSHORE HOLDINGS", "POKER ROOM", "LUXURY BOUTIQUE", "WIRE SERVICE")

CITIES = (
    "SAN JOSE CA", "SAN FRANCISCO CA", "OAKLAND CA", "PALO ALTO CA", "AUSTIN TX", "SEATTLE WA",
    "NEW YORK NY", "BROOKLYN NY", "CHICAGO IL", "DENVER CO", "PORTLAND OR", "BOSTON MA",
    "SANTA CLARA CA", "MOUNTAIN VIEW CA", "SUNNYVALE CA", "BERKELEY CA",
)
CARD_PREFIXES = ("", "", "POS PURCHASE ", "VISA ", "DEBIT CARD PURCHASE ", "CHECKCARD ", "SQ *", "TST* ")
ACH_PREFIXES = ("ACH DEBIT ", "ACH PMT ", "ONLINE PMT ", "")
ENUM_TYPOS = {
    "payment_method": ("credit_car", "Credit Card", "debit card", "Bank-Transfer", "chek", "CASH"),
    "type": ("debit", "DEBIT"),
}
