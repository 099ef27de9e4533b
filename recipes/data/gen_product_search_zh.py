"""product_search_zh.csv: Chinese shopping queries with a matching product title and a non-matching one.

Each category lists brands, attribute groups of mutually exclusive values (query wording, title wording)
and use cases. The positive title carries every attribute the query asks for; the negative is either a
near miss (same category, one requested attribute or the brand swapped) or a product from another
category, often a related one (earphones vs. speakers) so the task is not pure keyword matching.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

# name: (query words for the type, title word, brands, {group: [(query, title), ...]}, uses, related)
CATEGORIES: dict[str, dict] = {
    "耳机": dict(
        q=["耳机", "蓝牙耳机", "耳麦"],
        t="蓝牙耳机",
        brands=[("索尼", "SONY"), ("苹果", "Apple"), ("华为", "HUAWEI"), ("漫步者", "EDIFIER"), ("小米", "")],
        attrs={
            "佩戴": [("头戴式", "头戴式"), ("入耳式", "真无线入耳式"), ("挂耳式", "运动挂耳式"), ("骨传导", "骨传导")],
            "功能": [("降噪", "主动降噪"), ("低延迟", "游戏低延迟"), ("防水", "IPX5防水"), ("长续航", "50小时长续航")],
        },
        uses=["通勤", "跑步", "打游戏", "上网课", "睡觉"],
        near=["蓝牙音箱", "智能手表"],
    ),
    "蓝牙音箱": dict(
        q=["蓝牙音箱", "音响", "小音箱"],
        t="蓝牙音箱",
        brands=[("JBL", ""), ("BOSE", ""), ("漫步者", "EDIFIER"), ("小米", ""), ("索尼", "SONY")],
        attrs={
            "形态": [("便携", "便携式"), ("桌面", "桌面"), ("户外", "户外大音量")],
            "功能": [
                ("防水", "IP67防水"),
                ("重低音", "重低音"),
                ("带麦克风", "K歌带麦克风"),
                ("智能语音", "智能语音助手"),
            ],
        },
        uses=["宿舍", "客厅", "送朋友"],
        near=["耳机"],
    ),
    "手机": dict(
        q=["手机", "智能手机", "新手机"],
        t="5G智能手机",
        brands=[("华为", "HUAWEI"), ("小米", ""), ("苹果", "Apple"), ("荣耀", "HONOR"), ("OPPO", ""), ("vivo", "")],
        attrs={
            "存储": [("256G", "12GB+256GB"), ("512G", "12GB+512GB"), ("128G", "8GB+128GB"), ("1T", "16GB+1TB")],
            "卖点": [
                ("拍照好", "徕卡影像 超清拍照"),
                ("大电池", "6000mAh大电池"),
                ("快充", "120W超级快充"),
                ("小屏", "6.1英寸小屏"),
                ("曲面屏", "曲面屏"),
            ],
        },
        uses=["拍照", "打游戏", "老人用", "学生用"],
        near=["平板电脑", "智能手表"],
    ),
    "智能手表": dict(
        q=["智能手表", "运动手表", "手环"],
        t="智能手表",
        brands=[("华为", "HUAWEI"), ("苹果", "Apple"), ("佳明", "Garmin"), ("小米", ""), ("OPPO", "")],
        attrs={
            "功能": [("血氧", "血氧心率监测"), ("GPS", "双频GPS"), ("eSIM", "eSIM独立通话"), ("NFC", "NFC公交门禁")],
            "表带": [("钢带", "不锈钢表带"), ("硅胶", "氟橡胶表带"), ("皮革", "真皮表带")],
        },
        uses=["跑步", "游泳", "老人", "监测睡眠"],
        near=["耳机", "手机"],
    ),
    "平板电脑": dict(
        q=["平板", "平板电脑", "iPad"],
        t="平板电脑",
        brands=[("苹果", "Apple"), ("华为", "HUAWEI"), ("小米", ""), ("联想", "Lenovo")],
        attrs={
            "尺寸": [("11寸", "11英寸"), ("13寸", "13英寸"), ("8寸", "8.8英寸小尺寸")],
            "配件": [("带笔", "附手写笔"), ("带键盘", "含磁吸键盘"), ("插卡", "4G插卡版")],
        },
        uses=["画画", "看剧", "记笔记", "学习"],
        near=["笔记本电脑", "手机"],
    ),
    "笔记本电脑": dict(
        q=["笔记本", "笔记本电脑", "电脑"],
        t="笔记本电脑",
        brands=[("联想", "Lenovo"), ("华硕", "ASUS"), ("戴尔", "DELL"), ("苹果", "Apple"), ("惠普", "HP")],
        attrs={
            "类型": [("轻薄", "14英寸轻薄本"), ("游戏本", "16英寸电竞游戏本"), ("二合一", "二合一翻转触屏")],
            "配置": [
                ("32G内存", "32GB内存 1TB固态"),
                ("独显", "RTX 4060独立显卡"),
                ("长续航", "18小时长续航"),
                ("高刷屏", "165Hz高刷屏"),
            ],
        },
        uses=["办公", "编程", "剪视频", "大学生"],
        near=["平板电脑", "显示器", "机械键盘"],
    ),
    "显示器": dict(
        q=["显示器", "电脑屏幕", "显示屏"],
        t="显示器",
        brands=[("戴尔", "DELL"), ("LG", ""), ("三星", "SAMSUNG"), ("AOC", ""), ("小米", "")],
        attrs={
            "尺寸": [("27寸", "27英寸"), ("24寸", "23.8英寸"), ("34寸带鱼屏", "34英寸21:9带鱼屏")],
            "规格": [
                ("4K", "4K超高清"),
                ("144Hz", "2K 144Hz电竞"),
                ("Type-C", "Type-C 90W反向充电"),
                ("护眼", "低蓝光不闪屏护眼"),
            ],
        },
        uses=["设计", "打游戏", "办公", "看股票"],
        near=["笔记本电脑"],
    ),
    "机械键盘": dict(
        q=["机械键盘", "键盘", "客制化键盘"],
        t="机械键盘",
        brands=[("罗技", "Logitech"), ("雷蛇", "Razer"), ("樱桃", "CHERRY"), ("达尔优", ""), ("珂芝", "")],
        attrs={
            "轴体": [("红轴", "线性红轴"), ("茶轴", "茶轴"), ("青轴", "段落青轴")],
            "连接": [("无线", "三模无线"), ("有线", "有线USB")],
            "配列": [("87键", "87键"), ("68键", "68键紧凑"), ("全尺寸", "104键全尺寸")],
        },
        uses=["打游戏", "码字", "程序员"],
        near=["笔记本电脑", "耳机"],
    ),
    "跑步鞋": dict(
        q=["跑鞋", "跑步鞋", "运动鞋"],
        t="跑步鞋",
        brands=[("耐克", "NIKE"), ("阿迪达斯", "adidas"), ("李宁", "LI-NING"), ("安踏", "ANTA"), ("亚瑟士", "ASICS")],
        attrs={
            "人群": [("男", "男款"), ("女", "女款")],
            "特性": [("缓震", "碳板缓震"), ("透气", "网面透气"), ("防滑", "越野防滑"), ("轻便", "超轻")],
        },
        uses=["马拉松", "健身房", "日常通勤", "体考"],
        near=["羽绒服", "瑜伽垫"],
    ),
    "羽绒服": dict(
        q=["羽绒服", "冬季外套", "羽绒外套"],
        t="羽绒服",
        brands=[("波司登", "BOSIDENG"), ("优衣库", "UNIQLO"), ("鸭鸭", ""), ("始祖鸟", "ARC'TERYX")],
        attrs={
            "人群": [("女", "女款"), ("男", "男款"), ("儿童", "儿童")],
            "款式": [("长款", "过膝长款"), ("短款", "短款"), ("轻薄", "轻薄便携"), ("连帽", "连帽加厚")],
        },
        uses=["去东北", "上班", "滑雪"],
        near=["跑步鞋"],
    ),
    "电饭煲": dict(
        q=["电饭煲", "电饭锅", "煮饭锅"],
        t="电饭煲",
        brands=[("美的", "Midea"), ("苏泊尔", "SUPOR"), ("九阳", "Joyoung"), ("象印", "ZOJIRUSHI")],
        attrs={
            "容量": [("3L", "3L小容量"), ("4L", "4L"), ("5L", "5L大容量")],
            "功能": [
                ("IH", "IH电磁加热"),
                ("预约", "24小时智能预约"),
                ("低糖", "低糖米饭脱糖"),
                ("陶瓷内胆", "陶瓷釉内胆"),
            ],
        },
        uses=["一个人", "三口之家", "宿舍"],
        near=["空气炸锅"],
    ),
    "空气炸锅": dict(
        q=["空气炸锅", "炸锅", "无油炸锅"],
        t="空气炸锅",
        brands=[("美的", "Midea"), ("小熊", "Bear"), ("九阳", "Joyoung"), ("飞利浦", "PHILIPS")],
        attrs={
            "容量": [("大容量", "6L大容量"), ("小容量", "2.5L迷你")],
            "特点": [("可视", "可视窗口"), ("免翻面", "双热源免翻面"), ("不粘", "不粘易清洗")],
        },
        uses=["家用", "烤红薯", "做鸡翅"],
        near=["电饭煲"],
    ),
    "扫地机器人": dict(
        q=["扫地机器人", "扫地机", "扫拖一体机"],
        t="扫地机器人",
        brands=[("石头", "Roborock"), ("科沃斯", "ECOVACS"), ("追觅", "dreame"), ("云鲸", "")],
        attrs={
            "功能": [("自动集尘", "自动集尘"), ("拖布自清洁", "拖布热水自清洁"), ("避障", "AI视觉避障")],
            "导航": [("激光导航", "激光雷达导航"), ("APP控制", "APP远程控制")],
        },
        uses=["养宠物", "大户型", "木地板"],
        near=["空气净化器"],
    ),
    "空气净化器": dict(
        q=["空气净化器", "净化器", "除甲醛"],
        t="空气净化器",
        brands=[("小米", ""), ("352", ""), ("飞利浦", "PHILIPS"), ("IQAir", "")],
        attrs={
            "功能": [("除甲醛", "高效除甲醛"), ("除过敏原", "除花粉过敏原"), ("静音", "卧室静音")],
            "面积": [("大面积", "适用80㎡"), ("小面积", "桌面小型")],
        },
        uses=["新房装修", "母婴", "有猫"],
        near=["扫地机器人"],
    ),
    "行李箱": dict(
        q=["行李箱", "拉杆箱", "旅行箱"],
        t="拉杆箱",
        brands=[("新秀丽", "Samsonite"), ("外交官", "Diplomat"), ("小米", ""), ("日默瓦", "RIMOWA")],
        attrs={
            "尺寸": [("20寸", "20英寸登机箱"), ("24寸", "24英寸"), ("28寸", "28英寸大容量")],
            "材质": [("铝框", "铝框"), ("PC", "PC拉链款"), ("铝镁合金", "铝镁合金")],
        },
        uses=["出差", "留学", "登机"],
        near=["双肩包"],
    ),
    "双肩包": dict(
        q=["双肩包", "背包", "书包"],
        t="双肩包",
        brands=[("新秀丽", "Samsonite"), ("北面", "The North Face"), ("小米", ""), ("迪卡侬", "DECATHLON")],
        attrs={
            "用途": [("电脑包", "15.6英寸电脑"), ("登山包", "40L登山徒步"), ("书包", "学生减负")],
            "特点": [("防水", "防泼水"), ("轻便", "轻量"), ("大容量", "大容量")],
        },
        uses=["上学", "出差", "徒步"],
        near=["行李箱"],
    ),
    "口红": dict(
        q=["口红", "唇膏", "唇釉"],
        t="口红",
        brands=[("迪奥", "Dior"), ("圣罗兰", "YSL"), ("完美日记", ""), ("花西子", ""), ("阿玛尼", "Armani")],
        attrs={
            "色号": [("豆沙色", "豆沙色"), ("正红色", "正红色"), ("奶茶色", "奶茶色"), ("番茄红", "番茄红")],
            "质地": [("哑光", "丝绒哑光"), ("滋润", "滋润保湿"), ("镜面", "镜面水光")],
        },
        uses=["黄皮", "学生", "送女朋友"],
        near=["面霜"],
    ),
    "面霜": dict(
        q=["面霜", "保湿霜", "护肤霜"],
        t="面霜",
        brands=[("兰蔻", "Lancôme"), ("雅诗兰黛", "Estée Lauder"), ("珀莱雅", ""), ("薇诺娜", ""), ("理肤泉", "")],
        attrs={
            "功效": [("保湿", "深层补水保湿"), ("抗老", "紧致抗皱"), ("修护", "舒缓修护屏障"), ("美白", "提亮淡斑")],
            "肤质": [("敏感肌", "敏感肌适用"), ("油皮", "清爽控油"), ("干皮", "干皮滋润")],
        },
        uses=["秋冬", "熬夜", "孕妇"],
        near=["口红", "洗发水"],
    ),
    "洗发水": dict(
        q=["洗发水", "洗发露", "洗头膏"],
        t="洗发水",
        brands=[("海飞丝", ""), ("潘婷", "PANTENE"), ("阿道夫", ""), ("卡诗", "KÉRASTASE")],
        attrs={
            "功效": [("去屑", "去屑止痒"), ("控油", "控油蓬松"), ("防脱", "防脱固发"), ("修护", "修护烫染受损")],
            "规格": [("大瓶", "750ml大瓶装"), ("旅行装", "100ml旅行装")],
        },
        uses=["男士", "油头", "染发后"],
        near=["面霜"],
    ),
    "咖啡豆": dict(
        q=["咖啡豆", "咖啡", "意式豆"],
        t="咖啡豆",
        brands=[("星巴克", "Starbucks"), ("三顿半", ""), ("隅田川", ""), ("Lavazza", "")],
        attrs={
            "烘焙": [("深烘", "深度烘焙"), ("中烘", "中度烘焙"), ("浅烘", "浅烘花果香")],
            "产地": [("云南", "云南保山"), ("埃塞", "埃塞俄比亚耶加雪菲"), ("哥伦比亚", "哥伦比亚")],
        },
        uses=["手冲", "意式咖啡机", "冷萃"],
        near=["茶叶"],
    ),
    "茶叶": dict(
        q=["茶叶", "茶", "口粮茶"],
        t="茶叶",
        brands=[("大益", ""), ("八马", ""), ("张一元", ""), ("小罐茶", "")],
        attrs={
            "品类": [
                ("龙井", "明前西湖龙井绿茶"),
                ("普洱", "云南普洱熟茶"),
                ("正山小种", "武夷正山小种红茶"),
                ("铁观音", "安溪铁观音乌龙茶"),
            ],
            "包装": [("礼盒", "礼盒装"), ("罐装", "罐装"), ("散装", "散装")],
        },
        uses=["送长辈", "办公室", "日常"],
        near=["咖啡豆"],
    ),
    "猫粮": dict(
        q=["猫粮", "猫咪粮", "主粮"],
        t="猫粮",
        brands=[("皇家", "ROYAL CANIN"), ("渴望", "ORIJEN"), ("网易严选", ""), ("麦富迪", "")],
        attrs={
            "阶段": [("幼猫", "幼猫"), ("成猫", "成猫"), ("老年猫", "老年猫")],
            "配方": [("无谷", "无谷高蛋白"), ("冻干", "冻干双拼"), ("去毛球", "去毛球配方")],
        },
        uses=["挑食", "英短", "肠胃敏感"],
        near=["狗粮"],
    ),
    "狗粮": dict(
        q=["狗粮", "狗狗粮", "犬粮"],
        t="狗粮",
        brands=[("皇家", "ROYAL CANIN"), ("冠能", "PRO PLAN"), ("比瑞吉", ""), ("伯纳天纯", "")],
        attrs={
            "体型": [("小型犬", "小型犬"), ("大型犬", "大型犬")],
            "阶段": [("幼犬", "幼犬"), ("成犬", "成犬")],
            "配方": [("美毛", "鸡肉美毛"), ("低敏", "三文鱼低敏")],
        },
        uses=["挑食", "肠胃弱", "多狗家庭"],
        near=["猫粮"],
    ),
    "电动牙刷": dict(
        q=["电动牙刷", "牙刷", "智能牙刷"],
        t="电动牙刷",
        brands=[("飞利浦", "PHILIPS"), ("欧乐B", "Oral-B"), ("usmile", ""), ("舒客", "")],
        attrs={
            "类型": [("声波", "声波震动"), ("旋转", "3D旋转式")],
            "特点": [("软毛", "敏感软毛"), ("长续航", "续航180天"), ("美白", "亮白模式")],
        },
        uses=["牙龈敏感", "情侣", "学生"],
        near=["冲牙器"],
    ),
    "冲牙器": dict(
        q=["冲牙器", "水牙线", "洗牙器"],
        t="冲牙器",
        brands=[("松下", "Panasonic"), ("博皓", "prooral"), ("洁碧", "Waterpik")],
        attrs={
            "形态": [("便携", "便携式"), ("台式", "家用台式")],
            "功能": [("正畸", "正畸专用喷头"), ("多档", "五档水压")],
        },
        uses=["戴牙套", "出差"],
        near=["电动牙刷"],
    ),
    "瑜伽垫": dict(
        q=["瑜伽垫", "健身垫", "地垫"],
        t="瑜伽垫",
        brands=[("Keep", ""), ("迪卡侬", "DECATHLON"), ("Lululemon", ""), ("李宁", "LI-NING")],
        attrs={
            "材质": [("TPE", "TPE"), ("天然橡胶", "天然橡胶"), ("NBR", "NBR加厚")],
            "厚度": [("6mm", "6mm"), ("10mm", "10mm加厚"), ("4mm", "4mm薄款")],
        },
        uses=["家用", "初学者", "普拉提"],
        near=["跑步鞋"],
    ),
    "保温杯": dict(
        q=["保温杯", "水杯", "焖烧杯"],
        t="保温杯",
        brands=[("膳魔师", "THERMOS"), ("象印", "ZOJIRUSHI"), ("虎牌", "TIGER"), ("富光", "")],
        attrs={
            "容量": [("500ml", "500ml"), ("1L", "1000ml大容量"), ("350ml", "350ml小巧")],
            "特点": [("316不锈钢", "316不锈钢内胆"), ("带吸管", "带吸管"), ("车载", "车载")],
        },
        uses=["上班", "学生", "户外"],
        near=["双肩包"],
    ),
}

SERIES = ["Pro", "Air", "Lite", "Max", "SE", "Plus", "Neo", "Ultra", "X2", "S3", "Mini", "GT"]
MODS = ["性价比高", "推荐", "哪个牌子好", "学生党", "正品", "2024新款", "送礼", "平价", "高端", "排行榜"]
# Query phrasings; {t} is a type word, {a}/{b} requested attributes, {u} a use case, {m} a modifier.
ONE_ATTR = ["{a}{t}", "{t} {a}", "{a}{t}{m}", "{t}{a} {m}", "适合{u}的{a}{t}", "{u}用{t} {a}", "{brand}{t} {a}"]
TWO_ATTR = ["{a}{t} {b}", "{t} {a} {b}", "{a}{b}{t}{m}", "{u} {a}{t} {b}", "{brand} {a}{t} {b}"]


def _brand(cat: dict, rng: random.Random) -> tuple[str, str]:
    zh, en = rng.choice(cat["brands"])
    return zh, (f"{zh}（{en}）" if en else zh)


def _title(cat: dict, brand: str, picks: dict[str, tuple[str, str]], rng: random.Random) -> str:
    """A product title with brand, series, the chosen attribute wordings and the type word."""
    year = rng.choice(["", "", "2024款 ", "2023款 ", "新款 "])
    attrs = " ".join(t for _, t in picks.values())
    return f"{brand} {rng.choice(SERIES)} {year}{attrs} {cat['t']}".replace("  ", " ")


def _random_picks(cat: dict, rng: random.Random) -> dict[str, tuple[str, str]]:
    groups = rng.sample(sorted(cat["attrs"]), k=min(2, len(cat["attrs"])))
    return {g: rng.choice(cat["attrs"][g]) for g in groups}


def _row(rng: random.Random) -> tuple[str, str, str] | None:
    name = rng.choice(sorted(CATEGORIES))
    cat = CATEGORIES[name]
    groups = sorted(cat["attrs"])
    asked = rng.sample(groups, k=rng.choice([1, 1, 2]) if len(groups) > 1 else 1)
    picks = {g: rng.choice(cat["attrs"][g]) for g in groups}  # positive has a value in every group
    brand_zh, brand = _brand(cat, rng)
    template = rng.choice(ONE_ATTR if len(asked) == 1 else TWO_ATTR)
    qa = [picks[g][0] for g in asked] + [""]
    use = rng.choice(cat["uses"])
    if "{u}" in template and any(use in q or q and q in use for q in qa):
        return None  # "适合拍照的拍照好手机" says the same thing twice
    query = template.format(t=rng.choice(cat["q"]), a=qa[0], b=qa[1], u=use, m=rng.choice(MODS), brand=brand_zh)
    positive = _title(cat, brand, picks, rng)

    kind = rng.random()
    if kind < 0.5:  # near miss: swap one requested attribute (or the brand) for a sibling value
        miss = dict(picks)
        neg_brand = brand
        if "{brand}" in template and rng.random() < 0.5:
            others = [b for b in cat["brands"] if b[0] != brand_zh]
            zh, en = rng.choice(others)
            neg_brand = f"{zh}（{en}）" if en else zh
        else:
            g = rng.choice(asked)
            miss[g] = rng.choice([v for v in cat["attrs"][g] if v != picks[g]])
        negative = _title(cat, neg_brand, miss, rng)
    else:  # another category; a related one most of the time
        other = rng.choice(cat["near"]) if kind < 0.8 else rng.choice([c for c in sorted(CATEGORIES) if c != name])
        ocat = CATEGORIES[other]
        negative = _title(ocat, _brand(ocat, rng)[1], _random_picks(ocat, rng), rng)
    return query, positive, negative


def make_product_search_zh(n: int = 500) -> list[tuple[str, str, str]]:
    """Rows (query, product, other_product); queries and products are unique."""
    rng = rng_for("product_search_zh")
    return take_unique(lambda: _row(rng), n, keys=lambda r: (r[0], r[1]))
