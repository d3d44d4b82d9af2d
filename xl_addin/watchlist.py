"""Well-known Southbound names: the templates' watchlist and the first codes of the sandbox's universe.

Kept apart from both so that a template does not depend on the sandbox (a test tool) to
know which companies to list.
"""

WELL_KNOWN = {
    "00700": "Tencent", "00005": "HSBC", "09988": "Alibaba", "03690": "Meituan",
    "01810": "Xiaomi", "00939": "CCB", "01398": "ICBC", "03988": "Bank of China",
    "00388": "HKEX", "02318": "Ping An", "00883": "CNOOC", "00941": "China Mobile",
    "01299": "AIA", "02020": "ANTA", "09618": "JD.com", "01211": "BYD",
    "00981": "SMIC", "02269": "WuXi Biologics", "00027": "Galaxy Ent.", "00016": "SHK Properties",
    "00001": "CK Hutchison", "00002": "CLP", "00003": "HK & China Gas", "00011": "Hang Seng Bank",
    "00175": "Geely Auto", "02015": "Li Auto", "09868": "XPeng", "09999": "NetEase",
    "01024": "Kuaishou", "06618": "JD Health", "00267": "CITIC", "00386": "Sinopec",
    "00857": "PetroChina", "01088": "China Shenhua", "02628": "China Life", "00688": "China Overseas",
    "01109": "China Resources Land", "02331": "Li Ning", "00291": "China Resources Beer", "06862": "Haidilao",
    "00968": "Xinyi Solar", "02382": "Sunny Optical", "00285": "BYD Electronic", "00992": "Lenovo",
    "00762": "China Unicom", "00728": "China Telecom", "01928": "Sands China", "00066": "MTR",
    "00836": "China Resources Power", "02899": "Zijin Mining", "01093": "CSPC Pharma", "00960": "Longfor",
    "02333": "Great Wall Motor", "00669": "Techtronic", "01177": "Sino Biopharm", "02313": "Shenzhou Intl",
    "00006": "Power Assets", "00012": "Henderson Land", "00823": "Link REIT", "01876": "Budweiser APAC",
    "06690": "Haier Smart Home", "02688": "ENN Energy", "00322": "Tingyi", "00151": "Want Want",
    "03968": "China Merchants Bank", "01658": "Postal Savings Bank", "00998": "CITIC Bank", "03328": "Bank of Communications",
    "01919": "COSCO Shipping", "00316": "OOIL", "01347": "Hua Hong Semi", "00020": "SenseTime",
    "09888": "Baidu", "09961": "Trip.com", "09626": "Bilibili", "02400": "XD Inc",
    "00780": "Tongcheng Travel", "01801": "Innovent", "06160": "BeiGene", "02359": "WuXi AppTec",
    "00853": "MicroPort", "01833": "Ping An Good Doctor", "03692": "Hansoh Pharma", "01516": "Sunac Services",
    "02007": "Country Garden", "03333": "Evergrande", "00914": "Anhui Conch", "02600": "Chalco",
    "01378": "China Hongqiao", "00358": "Jiangxi Copper", "03993": "CMOC", "01818": "Zhaojin Mining",
}
