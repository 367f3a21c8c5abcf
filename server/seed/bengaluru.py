"""Facts of the seeded city: neighbourhoods with dark stores, and the grocery catalogue shape."""

from __future__ import annotations

CITY_ID = "BLR"
CITY_NAME = "Bengaluru"

# (store_id, neighbourhood, lat, lng): real neighbourhood centres
STORES: list[tuple[str, str, float, float]] = [
    ("BLR-KOR", "Koramangala", 12.9352, 77.6245),
    ("BLR-IND", "Indiranagar", 12.9784, 77.6408),
    ("BLR-HSR", "HSR Layout", 12.9116, 77.6474),
    ("BLR-WHF", "Whitefield", 12.9698, 77.7500),
    ("BLR-JAY", "Jayanagar", 12.9250, 77.5938),
    ("BLR-JPN", "JP Nagar", 12.9063, 77.5857),
    ("BLR-BTM", "BTM Layout", 12.9166, 77.6101),
    ("BLR-MAL", "Malleshwaram", 13.0035, 77.5709),
    ("BLR-HEB", "Hebbal", 13.0358, 77.5970),
    ("BLR-ELC", "Electronic City", 12.8452, 77.6602),
    ("BLR-MRT", "Marathahalli", 12.9591, 77.6974),
    ("BLR-BEL", "Bellandur", 12.9304, 77.6784),
    ("BLR-YLK", "Yelahanka", 13.1007, 77.5963),
    ("BLR-BSK", "Banashankari", 12.9255, 77.5468),
]

# The demo's stores settle a short line as real dark stores do (``DarkStore``'s
# ``substitution_policy``, and under "ask" its ``substitution_fallback``): most let the
# picker substitute (fastest to the door); some ask the customer, whose silence means the
# proposed product or a refund; a few never substitute (the line is refunded). A store not
# named here substitutes. Only the demo seeds this (``qc seed``, ``qc demo``, ``qc serve
# --seed-demo``); the suite, the benchmarks and the deterministic simulation keep every
# store on "substitute", so their figures stay as they were.
DEMO_SUBSTITUTION: dict[str, tuple[str, str]] = {
    "BLR-KOR": ("substitute", "substitute"),
    "BLR-IND": ("ask", "substitute"),
    "BLR-HSR": ("never", "substitute"),
    "BLR-WHF": ("substitute", "substitute"),
    "BLR-JAY": ("ask", "refund"),
    "BLR-JPN": ("substitute", "substitute"),
    "BLR-BTM": ("substitute", "substitute"),
    "BLR-MAL": ("ask", "substitute"),
    "BLR-HEB": ("substitute", "substitute"),
    "BLR-ELC": ("never", "substitute"),
    "BLR-MRT": ("substitute", "substitute"),
    "BLR-BEL": ("ask", "refund"),
    "BLR-YLK": ("substitute", "substitute"),
    "BLR-BSK": ("ask", "substitute"),
}

# category slug -> (display name, aisle, brands, products, variants, sizes)
# sizes: (label, grams, base price in rupees)
Size = tuple[str, int, int]
CATEGORIES: dict[str, tuple[str, str, list[str], list[str], list[str], list[Size]]] = {
    "fruits-vegetables": (
        "Fruits & Vegetables",
        "A",
        ["Fresho", "Organic Tattva", "Farm Fresh", "Kisan Direct"],
        [
            "Tomato",
            "Onion",
            "Potato",
            "Banana Robusta",
            "Apple Shimla",
            "Carrot",
            "Cucumber",
            "Coriander",
            "Green Chilli",
            "Capsicum",
            "Lemon",
            "Ginger",
            "Garlic",
            "Beans",
            "Cabbage",
            "Cauliflower",
            "Spinach",
            "Mango Alphonso",
            "Pomegranate",
            "Papaya",
        ],
        ["", "Organic", "Hybrid", "Premium"],
        [("250 g", 250, 25), ("500 g", 500, 45), ("1 kg", 1000, 80)],
    ),
    "dairy-bread-eggs": (
        "Dairy, Bread & Eggs",
        "A",
        ["Amul", "Nandini", "Mother Dairy", "Heritage", "Milky Mist", "Akshayakalpa"],
        [
            "Toned Milk",
            "Full Cream Milk",
            "Curd",
            "Paneer",
            "Butter",
            "Cheese Slices",
            "Ghee",
            "Buttermilk",
            "Lassi",
            "Fresh Cream",
            "Greek Yogurt",
            "Eggs",
        ],
        ["", "Organic", "Lite", "Probiotic"],
        [("200 g", 200, 35), ("500 g", 500, 60), ("1 L", 1000, 68)],
    ),
    "bakery": (
        "Bakery",
        "B",
        ["Britannia", "Modern", "English Oven", "Harvest Gold", "iD Fresh"],
        [
            "White Bread",
            "Brown Bread",
            "Multigrain Bread",
            "Pav",
            "Burger Buns",
            "Rusk",
            "Cake",
            "Croissant",
            "Idli Dosa Batter",
            "Malabar Parota",
        ],
        ["", "Whole Wheat", "Sandwich", "Family Pack"],
        [("200 g", 200, 30), ("400 g", 400, 50), ("800 g", 800, 90)],
    ),
    "snacks-munchies": (
        "Snacks & Munchies",
        "C",
        ["Lay's", "Bingo", "Kurkure", "Haldiram's", "Uncle Chipps", "Pringles", "Too Yumm"],
        [
            "Potato Chips",
            "Nachos",
            "Bhujia",
            "Mixture",
            "Namkeen",
            "Puffs",
            "Banana Chips",
            "Peanuts",
            "Popcorn",
            "Aloo Sev",
        ],
        [
            "Classic Salted",
            "Masala",
            "Magic Masala",
            "Cream & Onion",
            "Tomato Tango",
            "Chilli Lemon",
            "Peri Peri",
        ],
        [("52 g", 52, 20), ("90 g", 90, 35), ("200 g", 200, 70)],
    ),
    "cold-drinks-juices": (
        "Cold Drinks & Juices",
        "D",
        ["Coca-Cola", "Thums Up", "Pepsi", "Sprite", "Maaza", "Real", "Paper Boat", "Red Bull"],
        ["Soft Drink", "Fruit Juice", "Energy Drink", "Soda", "Iced Tea", "Coconut Water"],
        ["Original", "Zero Sugar", "Mango", "Orange", "Lemon", "Mixed Fruit"],
        [("250 ml", 250, 20), ("750 ml", 750, 40), ("2 L", 2000, 95)],
    ),
    "tea-coffee": (
        "Tea & Coffee",
        "D",
        ["Tata Tea", "Brooke Bond", "Red Label", "Nescafe", "Bru", "Davidoff", "Tetley"],
        ["Tea", "Green Tea", "Instant Coffee", "Filter Coffee", "Tea Bags", "Chai Masala"],
        ["Premium", "Gold", "Classic", "Masala", "Elaichi", "Strong"],
        [("100 g", 100, 60), ("250 g", 250, 140), ("500 g", 500, 270)],
    ),
    "instant-food": (
        "Instant & Frozen Food",
        "E",
        ["Maggi", "Yippee", "Top Ramen", "MTR", "Knorr", "Ching's", "McCain"],
        [
            "Noodles",
            "Pasta",
            "Soup",
            "Ready to Eat Meal",
            "Upma Mix",
            "Poha Mix",
            "French Fries",
            "Frozen Peas",
        ],
        ["Masala", "Chicken", "Veg Atta", "Hot & Sour", "Schezwan", "Classic"],
        [("70 g", 70, 14), ("280 g", 280, 56), ("560 g", 560, 108)],
    ),
    "atta-rice-dal": (
        "Atta, Rice & Dal",
        "F",
        ["Aashirvaad", "India Gate", "Daawat", "Tata Sampann", "Fortune", "24 Mantra"],
        [
            "Whole Wheat Atta",
            "Basmati Rice",
            "Sona Masoori Rice",
            "Toor Dal",
            "Moong Dal",
            "Chana Dal",
            "Urad Dal",
            "Masoor Dal",
            "Rava",
            "Besan",
            "Poha",
        ],
        ["", "Organic", "Premium", "Unpolished"],
        [("500 g", 500, 60), ("1 kg", 1000, 110), ("5 kg", 5000, 480)],
    ),
    "masala-oil": (
        "Masala, Oil & More",
        "F",
        ["Everest", "MDH", "Catch", "Fortune", "Saffola", "Gemini", "Tata Salt"],
        [
            "Turmeric Powder",
            "Chilli Powder",
            "Garam Masala",
            "Sambar Powder",
            "Sunflower Oil",
            "Groundnut Oil",
            "Mustard Oil",
            "Salt",
            "Sugar",
            "Jaggery",
        ],
        ["", "Kashmiri", "Refined", "Cold Pressed"],
        [("50 g", 50, 25), ("100 g", 100, 45), ("500 g", 500, 200)],
    ),
    "sweets-chocolates": (
        "Sweets & Chocolates",
        "G",
        ["Cadbury", "Nestle", "Amul", "Ferrero", "Haldiram's", "Bikano"],
        [
            "Dairy Milk",
            "KitKat",
            "Dark Chocolate",
            "Gulab Jamun",
            "Rasgulla",
            "Soan Papdi",
            "Truffles",
            "Wafer Bar",
        ],
        ["Classic", "Fruit & Nut", "Silk", "Roast Almond", "Gift Pack"],
        [("40 g", 40, 40), ("150 g", 150, 120), ("500 g", 500, 350)],
    ),
    "biscuits": (
        "Biscuits & Cookies",
        "C",
        ["Britannia", "Parle", "Sunfeast", "Unibic", "McVitie's", "Oreo"],
        [
            "Marie Biscuits",
            "Cream Biscuits",
            "Digestive",
            "Cookies",
            "Glucose Biscuits",
            "Crackers",
        ],
        ["Classic", "Chocolate", "Butter", "Cashew", "Oats", "Vanilla"],
        [("75 g", 75, 10), ("200 g", 200, 30), ("600 g", 600, 85)],
    ),
    "breakfast-cereals": (
        "Breakfast & Cereals",
        "E",
        ["Kellogg's", "Quaker", "Saffola", "Bagrry's", "Yoga Bar", "Soulfull"],
        ["Corn Flakes", "Oats", "Muesli", "Granola", "Chocos", "Ragi Flakes"],
        ["Original", "Honey", "Fruit & Nut", "Masala", "Chocolate"],
        [("250 g", 250, 120), ("500 g", 500, 210), ("1 kg", 1000, 380)],
    ),
    "dry-fruits": (
        "Dry Fruits & Nuts",
        "G",
        ["Happilo", "Nutraj", "Tata Sampann", "Farmley"],
        ["Almonds", "Cashews", "Raisins", "Walnuts", "Pistachios", "Dates", "Trail Mix"],
        ["", "Premium", "Roasted", "Salted"],
        [("100 g", 100, 150), ("250 g", 250, 350), ("500 g", 500, 650)],
    ),
    "personal-care": (
        "Personal Care",
        "H",
        ["Dove", "Colgate", "Himalaya", "Nivea", "Dettol", "Head & Shoulders", "Lifebuoy"],
        [
            "Soap",
            "Shampoo",
            "Toothpaste",
            "Face Wash",
            "Body Lotion",
            "Hand Wash",
            "Deodorant",
            "Toothbrush",
        ],
        ["Classic", "Herbal", "Sensitive", "Anti-Dandruff", "Moisturising", "Fresh"],
        [("100 ml", 100, 90), ("180 ml", 180, 160), ("400 ml", 400, 320)],
    ),
    "cleaning-essentials": (
        "Cleaning Essentials",
        "H",
        ["Surf Excel", "Ariel", "Vim", "Harpic", "Lizol", "Colin", "Scotch-Brite"],
        [
            "Detergent Powder",
            "Liquid Detergent",
            "Dishwash Gel",
            "Toilet Cleaner",
            "Floor Cleaner",
            "Glass Cleaner",
            "Scrub Pad",
            "Garbage Bags",
        ],
        ["Original", "Lemon", "Matic", "Power", "Citrus"],
        [("500 ml", 500, 99), ("1 L", 1000, 185), ("2 L", 2000, 360)],
    ),
    "baby-care": (
        "Baby Care",
        "H",
        ["Pampers", "Huggies", "Johnson's", "Himalaya Baby", "Cerelac", "MamyPoko"],
        ["Diapers", "Baby Wipes", "Baby Oil", "Baby Powder", "Baby Food", "Baby Lotion"],
        ["Small", "Medium", "Large", "Gentle", "Wheat Apple"],
        [("100 ml", 100, 120), ("200 ml", 200, 220), ("400 ml", 400, 399)],
    ),
    "pet-care": (
        "Pet Care",
        "H",
        ["Pedigree", "Whiskas", "Drools", "Royal Canin"],
        ["Dog Food", "Cat Food", "Dog Treats", "Cat Litter"],
        ["Chicken", "Ocean Fish", "Adult", "Puppy", "Kitten"],
        [("400 g", 400, 180), ("1.2 kg", 1200, 450), ("3 kg", 3000, 990)],
    ),
    "meat-fish": (
        "Meat, Fish & Eggs",
        "B",
        ["Licious", "FreshToHome", "Zorabian", "Venky's"],
        [
            "Chicken Curry Cut",
            "Chicken Breast",
            "Mutton Curry Cut",
            "Fish Seer",
            "Prawns",
            "Chicken Sausages",
            "Country Eggs",
        ],
        ["", "Boneless", "Marinated", "Premium"],
        [("250 g", 250, 150), ("500 g", 500, 280), ("1 kg", 1000, 540)],
    ),
}

# Pack sizes of the products a category's sizes do not fit (milk by the litre, cheese by
# the slice, eggs by the piece): as many as the category has, so a seed picks the same
# products as before and only their packs change.
_PIECES_EGGS: list[Size] = [("6 pcs", 300, 45), ("12 pcs", 600, 85), ("30 pcs", 1500, 200)]
_MILK: list[Size] = [("200 ml", 200, 12), ("500 ml", 500, 28), ("1 L", 1000, 54)]
_DRINK: list[Size] = [("200 ml", 200, 15), ("500 ml", 500, 30), ("1 L", 1000, 55)]
_OIL: list[Size] = [("500 ml", 500, 90), ("1 L", 1000, 170), ("5 L", 5000, 800)]
_STAPLE: list[Size] = [("500 g", 500, 30), ("1 kg", 1000, 55), ("5 kg", 5000, 250)]
_HERB: list[Size] = [("100 g", 100, 12), ("250 g", 250, 25), ("500 g", 500, 45)]
_FROZEN: list[Size] = [("200 g", 200, 50), ("500 g", 500, 110), ("1 kg", 1000, 200)]
_WIPES: list[Size] = [("Pack of 20", 200, 99), ("Pack of 40", 400, 180), ("Pack of 72", 720, 299)]
PRODUCT_SIZES: dict[str, list[Size]] = {
    # fruits & vegetables
    "Banana Robusta": [("3 pcs", 450, 25), ("6 pcs", 900, 45), ("12 pcs", 1800, 85)],
    "Lemon": [("4 pcs", 200, 20), ("6 pcs", 300, 28), ("12 pcs", 600, 52)],
    "Coriander": _HERB,
    "Green Chilli": _HERB,
    "Ginger": _HERB,
    "Garlic": _HERB,
    "Spinach": [("1 bunch", 250, 25), ("2 bunches", 500, 45), ("4 bunches", 1000, 85)],
    "Cabbage": [("1 pc", 700, 35), ("2 pcs", 1400, 65), ("3 pcs", 2100, 95)],
    "Cauliflower": [("1 pc", 600, 40), ("2 pcs", 1200, 75), ("3 pcs", 1800, 110)],
    "Papaya": [("1 pc", 1000, 60), ("2 pcs", 2000, 115), ("3 pcs", 3000, 170)],
    # dairy, bread & eggs
    "Toned Milk": _MILK,
    "Full Cream Milk": _MILK,
    "Buttermilk": _DRINK,
    "Lassi": _DRINK,
    "Fresh Cream": [("200 ml", 200, 65), ("500 ml", 500, 150), ("1 L", 1000, 290)],
    "Ghee": [("200 ml", 200, 150), ("500 ml", 500, 340), ("1 L", 1000, 650)],
    "Curd": [("200 g", 200, 30), ("400 g", 400, 55), ("1 kg", 1000, 120)],
    "Greek Yogurt": [("100 g", 100, 40), ("200 g", 200, 75), ("400 g", 400, 140)],
    "Paneer": [("100 g", 100, 45), ("200 g", 200, 90), ("500 g", 500, 210)],
    "Butter": [("100 g", 100, 56), ("200 g", 200, 110), ("500 g", 500, 270)],
    "Cheese Slices": [("5 slices", 100, 70), ("10 slices", 200, 135), ("20 slices", 400, 260)],
    "Eggs": _PIECES_EGGS,
    # bakery
    "Pav": [("6 pcs", 300, 30), ("12 pcs", 600, 55), ("18 pcs", 900, 80)],
    "Burger Buns": [("2 pcs", 120, 30), ("4 pcs", 240, 50), ("6 pcs", 360, 70)],
    "Croissant": [("1 pc", 60, 40), ("2 pcs", 120, 75), ("4 pcs", 240, 140)],
    "Idli Dosa Batter": [("500 g", 500, 45), ("1 kg", 1000, 80), ("2 kg", 2000, 150)],
    "Malabar Parota": [("5 pcs", 400, 60), ("10 pcs", 800, 110), ("15 pcs", 1200, 160)],
    # drinks, tea & coffee
    "Energy Drink": [("250 ml", 250, 125), ("350 ml", 350, 170), ("4 x 250 ml", 1000, 480)],
    "Coconut Water": [("200 ml", 200, 40), ("500 ml", 500, 90), ("1 L", 1000, 160)],
    "Tea Bags": [("25 bags", 50, 90), ("50 bags", 100, 170), ("100 bags", 200, 320)],
    "Instant Coffee": [("50 g", 50, 150), ("100 g", 100, 290), ("200 g", 200, 560)],
    # instant & frozen
    "French Fries": _FROZEN,
    "Frozen Peas": _FROZEN,
    # masala, oil & more
    "Sunflower Oil": _OIL,
    "Groundnut Oil": _OIL,
    "Mustard Oil": _OIL,
    "Salt": [("500 g", 500, 12), ("1 kg", 1000, 25), ("2 kg", 2000, 45)],
    "Sugar": _STAPLE,
    "Jaggery": _STAPLE,
    # personal care
    "Soap": [("75 g", 75, 35), ("125 g", 125, 55), ("4 x 125 g", 500, 200)],
    "Toothpaste": [("50 g", 50, 30), ("100 g", 100, 55), ("200 g", 200, 105)],
    "Toothbrush": [("1 pc", 20, 40), ("2 pcs", 40, 75), ("4 pcs", 80, 140)],
    "Deodorant": [("150 ml", 150, 200), ("220 ml", 220, 280), ("2 x 150 ml", 300, 380)],
    # cleaning
    "Detergent Powder": [("500 g", 500, 60), ("1 kg", 1000, 115), ("4 kg", 4000, 430)],
    "Scrub Pad": [("1 pc", 15, 20), ("3 pcs", 45, 55), ("6 pcs", 90, 100)],
    "Garbage Bags": [("15 bags", 300, 60), ("30 bags", 600, 110), ("60 bags", 1200, 200)],
    # baby and pet care
    "Diapers": [("Pack of 20", 600, 399), ("Pack of 40", 1200, 699), ("Pack of 72", 2200, 1199)],
    "Baby Wipes": _WIPES,
    "Baby Powder": [("100 g", 100, 110), ("200 g", 200, 199), ("400 g", 400, 360)],
    "Baby Food": [("300 g", 300, 280), ("500 g", 500, 440), ("1 kg", 1000, 820)],
    "Cat Litter": [("3 kg", 3000, 350), ("5 kg", 5000, 550), ("10 kg", 10000, 990)],
    # meat & fish
    "Country Eggs": _PIECES_EGGS,
}

# Aisle order from the entrance: the picker's S-shaped walk starts at A.
AISLES = ["A", "B", "C", "D", "E", "F", "G", "H"]
SHELVES_PER_AISLE = 6
BINS_PER_SHELF = 4
