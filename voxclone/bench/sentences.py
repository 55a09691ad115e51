"""English test sentences for intelligibility: plain, numbers, names, questions, long ones.

Each entry is ``(text, reference)``: ``text`` is what voxclone is asked to say; ``reference``
is how a listener would write what they heard, where the written input is ambiguous
(dates, times). ``None`` means the text itself is the reference.
"""

SENTENCES: list[tuple[str, str | None]] = [
    # everyday
    ("The quick brown fox jumps over the lazy dog.", None),
    ("Please call Stella and ask her to bring these things with her from the store.", None),
    ("I left my umbrella on the train this morning, so I got completely soaked.", None),
    ("Could you turn the music down a little? I am trying to concentrate.", None),
    ("We should leave early tomorrow if we want to avoid the traffic.", None),
    ("My grandmother grows tomatoes, beans and pumpkins in her garden.", None),
    ("The library closes at eight, but the reading room stays open until ten.", None),
    ("He opened the window and the cold air rushed into the room.", None),
    ("She has been learning to play the violin for three years.", None),
    ("The children laughed when the puppy chased its own tail.", None),
    # questions
    ("Where did you put the keys to the garage?", None),
    ("Have you ever seen the northern lights?", None),
    ("Why does the kettle always take so long to boil?", None),
    ("Would you like tea or coffee with your breakfast?", None),
    ("How many people are coming to the party on Saturday?", None),
    ("Is it true that octopuses have three hearts?", None),
    # numbers, money, dates, times, units
    ("The meeting starts at 9:30 tomorrow morning.", "The meeting starts at nine thirty tomorrow morning."),
    ("The tickets cost $45 each, or $120 for a family of four.", None),
    ("Our flight leaves on March 3rd, 2025 from gate 12.", "Our flight leaves on March third, 2025 from gate 12."),
    ("About 75% of the students passed the final exam.", None),
    ("The bridge is 2.5 kilometers long and was finished in 1932.", None),
    ("She was born in 1987 and moved to Canada in 2004.", None),
    ("Add 250 grams of flour and 3 eggs to the bowl.", None),
    ("The population grew from 40,000 to nearly 1,000,000 in fifty years.", None),
    ("Turn left after 200 meters, then take the 2nd exit.", "Turn left after 200 meters, then take the second exit."),
    ("The temperature dropped to minus 5 degrees overnight.", None),
    # names and places
    ("Doctor Patel will see you in room 14 at the end of the corridor.", None),
    ("Maria and Carlos drove from Madrid to Lisbon last summer.", None),
    ("The Amazon River flows through Peru, Colombia and Brazil.", None),
    ("William Shakespeare was born in Stratford upon Avon.", None),
    ("We visited Tokyo, Kyoto and Osaka during the cherry blossom season.", None),
    ("Professor Johnson teaches physics at the University of Edinburgh.", None),
    # harder words
    ("The archaeologist carefully catalogued every fragment of pottery.", None),
    ("Photosynthesis converts sunlight, water and carbon dioxide into sugar.", None),
    ("The orchestra rehearsed the symphony for the anniversary concert.", None),
    ("Her entrepreneurial spirit was obvious from a very early age.", None),
    # long sentences
    (
        "When the storm finally passed, the villagers came out of their houses, looked at the fallen trees "
        "and broken fences, and quietly began to clean up the mess together.",
        None,
    ),
    (
        "Although the recipe looked simple, it took us three attempts and most of the afternoon before the "
        "bread came out of the oven with a golden crust.",
        None,
    ),
    (
        "If you are planning to hike the trail in winter, bring warm clothes, plenty of water and a map, "
        "because the phone signal disappears after the first hour.",
        None,
    ),
    (
        "The museum's new exhibition explains how ancient sailors navigated by the stars long before the "
        "invention of the compass.",
        None,
    ),
    (
        "After years of saving, they finally bought a small cottage by the sea, where they spend every "
        "summer reading, walking and fishing.",
        None,
    ),
    (
        "Scientists believe that regular exercise, a balanced diet and enough sleep are the most reliable "
        "ways to stay healthy as we get older.",
        None,
    ),
    ("Thank you for your patience; your call is important to us.", None),
    ("Remember to switch off the lights before you go to bed.", None),
    ("The train to Manchester has been delayed by twenty minutes.", None),
]
